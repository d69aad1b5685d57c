"""The multisensory integration task (mfbook.msi, chapter 9): periods, tuning, targets, masks,
catch trials, input noise and the input mask of the task's network."""

import pytest
import torch

from mfbook import msi


def test_training_and_test_trials_have_the_tasks_periods():
    T, steps = msi.periods(test=False)
    assert T == 125  # 2500 ms at dt = 20 ms
    assert (steps["fixation"], steps["stimulus"], steps["decision"]) == (
        range(0, 5),
        range(5, 55),
        range(55, 70),
    )
    T, steps = msi.periods(test=True)
    assert T == 90 and steps["fixation"] == range(0, 25) and steps["decision"].stop == 90


def test_a_training_batch_is_24_conditions_and_6_catch_trials():
    b = msi.batch(torch.Generator().manual_seed(0))
    assert b.x.shape == (30, 125, 5) and b.y.shape == b.mask.shape == (30, 125, 2)
    assert b.conditions[:8] == [("v", f) for f in range(9, 17)]
    assert b.conditions[24:] == [None] * 6
    assert msi.batch(test=True).x.shape == (24, 90, 5)


def test_targets_and_mask_follow_the_boundary():
    b = msi.batch(torch.Generator().manual_seed(1))
    _, steps = msi.periods()
    dec, fix, stim = list(steps["decision"]), list(steps["fixation"]), list(steps["stimulus"])
    for i, cond in enumerate(b.conditions[:24]):
        _, f = cond
        chosen = 0 if f > 12.5 else 1
        assert bool((b.y[i, dec, chosen] == 1.0).all()) and bool(
            (b.y[i, dec, 1 - chosen] == 0.2).all()
        )
        assert bool((b.y[i, fix] == 0.2).all())
        assert bool((b.mask[i, fix + dec] == 1).all()) and bool((b.mask[i, stim] == 0).all())
        assert bool((b.mask[i, 70:] == 0).all())  # after the decision: not counted
    for i in range(24, 30):  # catch trials: low targets, all counted
        assert bool((b.y[i] == 0.2).all()) and bool((b.mask[i] == 1).all())


def test_inputs_carry_the_tuning_the_cue_and_the_noise():
    b = msi.batch(torch.Generator().manual_seed(2), dt=20.0, tau=100.0, dtype=torch.float64)
    _, steps = msi.periods()
    stim = list(steps["stimulus"])
    clean = b.x - 0.2  # the baseline
    v9 = b.conditions.index(("v", 9))
    a16 = b.conditions.index(("a", 16))
    assert float(clean[v9, stim, msi.VISUAL_POS].mean()) == pytest.approx(0.4, abs=0.01)
    assert float(clean[v9, stim, msi.VISUAL_NEG].mean()) == pytest.approx(1.2, abs=0.01)
    assert float(clean[v9, stim, msi.AUDITORY_POS].mean()) == pytest.approx(0.0, abs=0.01)
    assert float(clean[a16, stim, msi.AUDITORY_POS].mean()) == pytest.approx(1.2, abs=0.01)
    assert float(clean[v9, stim, msi.START].mean()) == pytest.approx(1.0, abs=0.01)
    assert float(clean[v9, :5, msi.START].mean()) == pytest.approx(0.0, abs=0.01)
    catch = b.x[24:]  # baseline and noise only: std sqrt(2 alpha) sigma_in / alpha
    alpha = 0.2
    assert float(catch.mean()) == pytest.approx(0.2, abs=0.001)
    assert float(catch.std()) == pytest.approx((2 * alpha) ** 0.5 * 0.01 / alpha, rel=0.05)


def test_a_seed_fixes_the_batch():
    one = msi.batch(torch.Generator().manual_seed(3)).x
    assert torch.equal(one, msi.batch(torch.Generator().manual_seed(3)).x)
    assert not torch.equal(one, msi.batch(torch.Generator().manual_seed(4)).x)


def test_the_input_mask_of_the_tasks_network():
    allowed = msi.input_mask()
    assert allowed.shape == (150, 5) and bool(allowed[:, msi.START].all())
    assert not bool(allowed[:50, [msi.VISUAL_POS, msi.VISUAL_NEG]].any())
    assert bool(allowed[:50, [msi.AUDITORY_POS, msi.AUDITORY_NEG]].all())
    assert not bool(allowed[50:100, [msi.AUDITORY_POS, msi.AUDITORY_NEG]].any())
    assert not bool(allowed[100:, :4].any())
    with pytest.raises(ValueError, match="150 recurrent units"):
        msi.input_mask(100)


def test_the_masked_loss_counts_only_the_mask():
    b = msi.batch(torch.Generator().manual_seed(5))
    assert float(msi.masked_mse(b.y, b)) == 0.0
    shifted = b.y + b.mask.logical_not() * 7.0  # wrong only where nothing is counted
    assert float(msi.masked_mse(shifted, b)) == 0.0
    assert float(msi.masked_mse(b.y + 0.1, b)) == pytest.approx(
        0.5 * 0.01 * float(b.mask.sum()) / (30 * 125)
    )


def test_bad_timing_is_refused():
    with pytest.raises(ValueError, match="0 < dt <= tau"):
        msi.batch(dt=200.0, tau=100.0)
