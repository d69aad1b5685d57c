"""The measurements of the comparison (chapter 10): error, NLL, ECE with its reliability data,
predictive entropy, the removable fraction, and the shifted test sets; and their clear errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from mfbook import relatives
from mfbook.relatives import metrics, shift, sparsity

# three classes, four examples: confidences 0.9 (right), 0.9 (wrong), 0.62 (right), 0.5 (wrong)
PROBS = torch.tensor(
    [[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.62, 0.3, 0.08], [0.5, 0.4, 0.1]], dtype=torch.float64
)
Y = torch.tensor([0, 1, 0, 1])


def test_ece_of_a_hand_computed_example():
    r = metrics.reliability(PROBS, Y)
    # bins of width 1/15: 0.9 in bin 13, 0.62 in bin 9, 0.5 in bin 7
    # ECE = 2/4 |0.5 - 0.9| + 1/4 |1 - 0.62| + 1/4 |0 - 0.5| = 0.2 + 0.095 + 0.125
    assert r.ece == pytest.approx(0.42, abs=1e-12)
    assert metrics.ece(PROBS, Y) == r.ece
    assert len(r.edges) == 16 and r.edges[0] == 0 and r.edges[-1] == 1
    assert r.count == [0] * 7 + [1, 0, 1, 0, 0, 0, 2, 0]
    assert r.confidence[13] == pytest.approx(0.9) and r.accuracy[13] == 0.5
    assert r.confidence[9] == pytest.approx(0.62) and r.accuracy[9] == 1.0
    assert (r.confidence[0], r.accuracy[0]) == (0.0, 0.0)


def test_ece_agrees_with_a_plain_loop_over_the_bins():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(500, 10, generator=g), 1)
    y = torch.randint(0, 10, (500,), generator=g)
    conf, pred = probs.double().max(1)
    want = 0.0
    for b in range(15):
        inside = (conf > b / 15) & (conf <= (b + 1) / 15)
        if inside.any():
            acc = (pred[inside] == y[inside]).double().mean()
            want += float(inside.double().mean() * (acc - conf[inside].mean()).abs())
    r = metrics.reliability(probs, y)
    assert r.ece == pytest.approx(want, abs=1e-12) and sum(r.count) == 500
    assert metrics.ece(probs, y, n_bins=1) == pytest.approx(
        abs(float((pred == y).double().mean() - conf.mean())), abs=1e-12
    )


def test_nll_is_torchs_cross_entropy_of_the_logits():
    g = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(300, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (300,), generator=g)
    probs = torch.softmax(logits, 1)
    assert metrics.nll(probs, y) == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-10)
    assert metrics.error(probs, y) == float((logits.argmax(1) != y).double().mean())
    sure_wrong = torch.tensor([[1.0, 0.0]])
    assert metrics.nll(sure_wrong, torch.tensor([1])) == pytest.approx(
        -math.log(metrics.PROB_FLOOR)
    )


def test_predictive_entropy_from_certainty_to_the_uniform():
    uniform = torch.full((3, 10), 0.1)
    assert metrics.predictive_entropy(uniform) == pytest.approx(math.log(10), rel=1e-6)
    assert metrics.predictive_entropy(torch.eye(4)) == 0.0
    per = metrics.predictive_entropy(PROBS, per_example=True)
    want = -(PROBS * PROBS.log()).sum(1)
    assert per.shape == (4,) and torch.allclose(per, want)


@pytest.mark.parametrize(
    ("probs", "y", "match"),
    [
        (PROBS[:3], Y, "same number of rows"),
        (PROBS, Y[:, None], "1-D integer"),
        (PROBS, Y.double(), "1-D integer"),
        (PROBS, torch.tensor([0, 1, 0, 3]), r"y must lie in \[0, 3\)"),
        (PROBS * 2, Y, r"probs must lie in \[0, 1\]"),
        (PROBS * 0.9, Y, "rows that sum to 1"),
        (torch.log(PROBS), Y, r"probs must lie in \[0, 1\]"),
        (PROBS[0], Y, "2-D"),
        (torch.full((4, 3), math.nan), Y, "NaN"),
    ],
)
def test_bad_input_is_named(probs, y, match):
    for fn in (metrics.nll, metrics.error, metrics.ece):
        with pytest.raises(ValueError, match=match):
            fn(probs, y)


def test_logits_are_refused_with_a_hint():
    logits = torch.tensor([[0.2, 0.5, 0.1]])
    with pytest.raises(ValueError, match="not logits"):
        metrics.predictive_entropy(logits)
    with pytest.raises(ValueError, match="n_bins must be positive"):
        metrics.ece(PROBS, Y, n_bins=0)


# ------------------------------------------------------------------ the removable fraction


def test_keep_masks_rank_over_all_layers_together():
    scores = [torch.tensor([[5.0, 1.0]]), torch.tensor([3.0, 0.0, 4.0])]
    masks = sparsity.keep_masks(scores, 0.4)  # round(0.4 * 5) = 2: the 0.0 and the 1.0 go
    assert [m.tolist() for m in masks] == [[[True, False]], [True, False, True]]
    assert all(m.all() for m in sparsity.keep_masks(scores, 0.0))
    assert not any(m.any() for m in sparsity.keep_masks(scores, 1.0))
    with pytest.raises(ValueError, match="fraction"):
        sparsity.keep_masks(scores, 1.5)


def test_sparsity_stops_at_the_first_costly_fraction_and_bisects():
    scores = [torch.arange(1000.0)]

    def evaluate(keep):  # the top 30% carry everything: 1 point of error per weight lost
        return 0.02 + 0.01 * int((~keep[0][700:]).sum())

    r = sparsity.sparsity(scores, evaluate, base_error=0.02)
    assert r.fraction == pytest.approx(0.7)
    assert 0.8 in r.fractions and 0.9 not in r.fractions  # the grid stops at the first failure
    assert r.fractions == sorted(r.fractions) and len(r.errors) == len(r.fractions)
    assert len(r.fractions) == 9 + 4  # 0 .. 0.8, then four halvings in (0.7, 0.8)
    loose = sparsity.sparsity(scores, evaluate, 0.02, tolerance=0.05, refine=0)
    assert loose.fraction == 0.7  # 5 weights of the top are more than 5 points


def test_sparsity_of_a_network_with_dead_weights():
    model = relatives.build("bp", sizes=(20, 8, 3), seed=0).double()
    with torch.no_grad():  # half of each layer's weights are 0: removing them is free
        for w in model.weights:
            w[:, ::2] = 0.0
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 20, generator=g, dtype=torch.float64)
    y = model.predict(x).argmax(1)
    y[:40] = (y[:40] + 1) % 3  # 10% error

    def evaluate(keep):
        return metrics.error(model.pruned(keep).predict(x), y)

    base = evaluate([torch.ones_like(w, dtype=torch.bool) for w in model.weights])
    r = sparsity.sparsity(model.prune_scores(), evaluate, base)
    assert base == pytest.approx(0.1) and 0.5 <= r.fraction < 1.0
    assert r.errors[r.fractions.index(0.5)] == base


def test_sparsity_checks_its_arguments():
    s = [torch.ones(3)]
    with pytest.raises(ValueError, match="scores must be a non-empty list"):
        sparsity.sparsity([], lambda k: 0.0, 0.1)
    with pytest.raises(TypeError, match="evaluate must be callable"):
        sparsity.sparsity(s, 0.1, 0.1)
    with pytest.raises(ValueError, match="base_error"):
        sparsity.sparsity(s, lambda k: 0.0, 2.0)
    with pytest.raises(ValueError, match="grid must be increasing"):
        sparsity.sparsity(s, lambda k: 0.0, 0.1, grid=(0.5, 0.2))
    with pytest.raises(ValueError, match="evaluate returned nan"):
        sparsity.sparsity(s, lambda k: math.nan, 0.1)


# ------------------------------------------------------------------------- shifted test sets


def images(n=5, seed=0):
    return torch.rand(n, 784, generator=torch.Generator().manual_seed(seed))


def test_rotation_by_0_is_the_identity_and_by_90_a_quarter_turn():
    x = images()
    assert torch.equal(shift.rotated(x, 0), x)
    quarter = torch.rot90(x.reshape(-1, 28, 28), 1, (1, 2)).reshape(-1, 784)
    assert (shift.rotated(x, 90) - quarter).abs().max() < 1e-5
    assert (
        shift.rotated(x, -90) - torch.rot90(x.reshape(-1, 28, 28), -1, (1, 2)).reshape(-1, 784)
    ).abs().max() < 1e-5
    assert (shift.rotated(x, 360) - x).abs().max() < 1e-5


def test_rotation_turns_counter_clockwise_as_shown():
    img = torch.zeros(28, 28)
    img[2, 14] = 1.0  # top centre
    out = shift.rotated(img.reshape(1, 784), 90).reshape(28, 28)
    row, col = divmod(int(out.argmax()), 28)
    assert (row, col) == (13, 2)  # a quarter turn counter-clockwise brings the top to the left


def test_rotation_keeps_the_range_and_loses_the_corners():
    x = torch.ones(2, 784)
    out = shift.rotated(x, 45)
    assert out.min() >= 0 and out.max() <= 1
    assert out.reshape(2, 28, 28)[:, 0, 0].max() == 0  # the corner turned out of the frame


def test_noise_is_gaussian_in_the_middle_and_clipped_to_the_pixel_range():
    x = torch.full((200, 784), 0.5)
    g = torch.Generator().manual_seed(0)
    out = shift.noisy(x, 0.1, g)
    assert float((out - x).std()) == pytest.approx(0.1, rel=0.02)
    wide = shift.noisy(x, 2.0, g)
    assert wide.min() == 0 and wide.max() == 1
    assert torch.equal(shift.noisy(x, 0.0), x)
    g1, g2 = (torch.Generator().manual_seed(5) for _ in range(2))
    assert torch.equal(shift.noisy(x, 0.3, g1), shift.noisy(x, 0.3, g2))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: shift.rotated(torch.rand(3, 100), 15), r"x must have shape \(B, 784\)"),
        (lambda: shift.rotated(2 * torch.ones(3, 784), 15), r"pixels in \[0, 1\]"),
        (lambda: shift.rotated(images(), math.inf), "degrees must be a finite number"),
        (lambda: shift.noisy(images(), -0.1), "sigma must be >= 0"),
        (lambda: shift.noisy(images(), "0.1"), "sigma must be a finite number"),
    ],
)
def test_shift_input_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
