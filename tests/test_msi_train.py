"""Training on the multisensory task (mfbook.msi_train, chapter 9): the task's network as the
authors' code sets it up, a real short training run that learns, and its evaluation."""

import pytest
import torch

from mfbook import msi
from mfbook.msi_train import MSIConfig, build_msi_model, choices, evaluate, train_msi


def test_the_network_of_the_task():
    model = build_msi_model(MSIConfig(), torch.Generator().manual_seed(0))
    allowed = msi.input_mask()
    assert torch.equal(model.pi_inp.detach(), (~allowed).float())  # absent where forbidden
    assert float(model.xi_inp.abs().max()) == 0 and not model.xi_inp.requires_grad
    assert not model.pi_inp.requires_grad and model.m_inp.requires_grad
    assert float(model.m_inp.detach()[~allowed].abs().max()) == 0
    for group in ("rec", "out"):
        xi = getattr(model, f"xi_{group}").detach()
        assert float(xi.min()) >= 0 and float(xi.max()) < 0.01 and float(xi.mean()) > 0.003
        assert float(getattr(model, f"pi_{group}").detach().abs().max()) == 0
    assert model.readout == "every" and model.sigma_rec == 0.15 and model.alpha == 0.2


def test_a_short_run_learns_and_keeps_the_input_structure():
    torch.set_num_threads(1)
    config = MSIConfig(iterations=80, min_iterations=80, test_batches=2, log_every=20)
    result = train_msi(config, seed=3)
    losses = result.history["loss"]
    assert len(losses) == 80
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10
    assert result.history["logged_iteration"] == [0, 20, 40, 60, 80]
    assert len(result.history["rec_pi_nonzero"]) == 5 and result.history["rec_pi_nonzero"][0] == 0
    model = result.model
    assert torch.equal(model.pi_inp.detach(), (~msi.input_mask()).float())
    assert float(model.xi_inp.detach().abs().max()) == 0
    curve = result.history["psychometric"]
    assert len(curve) == 3 and all(len(row) == 8 and all(0 <= p <= 1 for p in row) for row in curve)
    for key in ("test_error_mf", "test_error_mean", "test_error_sample"):
        assert 0 <= result.history[key][0] <= 1


def test_evaluation_counts_wrong_choices():
    model = build_msi_model(MSIConfig(), torch.Generator().manual_seed(4))
    with torch.no_grad():  # an untrained readout that always answers "above"
        model.m_out.zero_()
        model.xi_out.zero_()
        model.m_out[0] = 1.0
    out = evaluate(model, MSIConfig(test_batches=1), torch.Generator().manual_seed(5))
    assert out["test_error_mean"] == pytest.approx(0.5)  # half the frequencies are below 12.5
    assert all(p == 1.0 for row in out["psychometric"] for p in row)


def test_bad_config_and_output_are_named():
    with pytest.raises(ValueError, match="150 recurrent units"):
        MSIConfig(n_rec=100)
    with pytest.raises(ValueError, match="lr_m must be a positive"):
        MSIConfig(lr_m=0.0)
    with pytest.raises(ValueError, match="need 0 < dt <= tau"):
        MSIConfig(dt=200.0)
    with pytest.raises(TypeError, match="MSIConfig"):
        train_msi({"iterations": 3})
    with pytest.raises(ValueError, match="output"):
        choices(torch.zeros(4, 2))
