"""The stored experiments of chapter 9 (mfbook.recurrent_results through mfbook.reproduce):
tiny versions trained for real, stored, reloaded, and found stale when anything changes."""

import dataclasses
import json

import pytest
import torch

from mfbook import fingerprint, recurrent_results, reproduce
from mfbook.data import load_mnist
from mfbook.msi_train import MSIConfig
from mfbook.recurrent_results import RecurrentExperiment, config_from_dict, config_to_dict
from mfbook.rnn_train import RecurrentConfig, as_rows

TINY = {"n_train": 400, "n_test": 200, "epochs": 1, "batch_size": 100, "n_rec": 12}
TINY_MSI = MSIConfig(name="rnn_msi", iterations=3, min_iterations=3, test_batches=1, log_every=2)


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """The three recurrent experiments, tiny, with 2 seeds, stored under tmp_path."""
    monkeypatch.setattr(recurrent_results, "N_VAL", 100)
    table = {
        "rnn_mnist": RecurrentExperiment(RecurrentConfig(name="rnn_mnist", **TINY), (0, 1)),
        "rnn_mnist_bptt": RecurrentExperiment(
            RecurrentConfig(name="rnn_mnist_bptt", method="bptt", **TINY), (0, 1), (1e-3, 3e-2)
        ),
        "rnn_msi": RecurrentExperiment(TINY_MSI, (0, 1)),
    }
    monkeypatch.setattr(recurrent_results, "RECURRENT", table)
    monkeypatch.setattr(reproduce, "RECURRENT", table)
    torch.set_num_threads(1)
    return tmp_path


def test_configs_round_trip_and_bad_ones_are_named():
    for config in (RecurrentConfig(name="a", n_rec=7), MSIConfig(name="b", iterations=5)):
        assert config_from_dict(json.loads(json.dumps(config_to_dict(config)))) == config
    with pytest.raises(ValueError, match="unknown kind"):
        config_from_dict({"kind": "lstm"})
    with pytest.raises(ValueError, match=r"unknown fields of a stored msi config: \['depth'\]"):
        config_from_dict({**config_to_dict(MSIConfig()), "depth": 3})


@pytest.mark.slow
def test_stored_recurrent_results_are_current_reload_and_go_stale(tiny):
    for name in ("rnn_mnist", "rnn_mnist_bptt", "rnn_msi"):
        summary = reproduce.reproduce(name, root=tiny, progress=False)
        assert reproduce.stale_reason(name, tiny) is None, name
        assert set(summary["runs"]) == {"0", "1"} and summary["kept"] == ["0", "1"]
        kinds = ("mean",) if name.endswith("bptt") else ("mean", "mf", "sample")  # one network
        assert set(summary["final_mean"]) == {f"test_error_{k}" for k in kinds}, name
        assert all(0 <= v <= 1 for v in summary["final_mean"].values()), name
        assert summary["runs"]["1"]["train_seconds"] > 0
    # the stored parameters are the trained ones: the mean network's test error again
    model = reproduce.load_model("rnn_mnist", seed=1, root=tiny)
    x, y = load_mnist("test", n=TINY["n_test"])
    with torch.no_grad():
        error = float((model(as_rows(x), mode="mean").argmax(1) != y).double().mean())
    final = reproduce.load_summary("rnn_mnist", tiny)["runs"]["1"]["final"]
    assert error == pytest.approx(final["test_error_mean"], abs=1e-12)
    bptt = reproduce.load_summary("rnn_mnist_bptt", tiny)
    sweep = {k: v["final"]["val_error_mean"] for k, v in bptt["lr_sweep"].items()}
    assert bptt["chosen_lr"] == float(min(sweep, key=sweep.get))
    assert {r["config"]["lr"] for r in bptt["runs"].values()} == {bptt["chosen_lr"]}
    msi = reproduce.load_summary("rnn_msi", tiny)
    curve = msi["runs"]["0"]["history"]["psychometric"]
    assert len(curve) == 3 and all(len(row) == 8 for row in curve)
    assert "rnn_msi" in (tiny / "README.md").read_text()  # the results index lists it

    def tampered(name, change):
        path = tiny / name / "summary.json"
        original = path.read_text()
        s = json.loads(original)
        change(s)
        path.write_text(json.dumps(s))
        try:
            return reproduce.stale_reason(name, tiny)
        finally:
            path.write_text(original)

    def other_epochs(s):
        s["config"]["epochs"] = 2

    def other_reference(s):
        s["reference"][0][0] += 1.0

    def other_choice(s):
        s["chosen_lr"] = 0.5

    assert "config or seeds" in tampered("rnn_mnist", other_epochs)
    assert "reference statistics differ" in tampered("rnn_msi", other_reference)
    assert "learning rate its sweep chose" in tampered("rnn_mnist_bptt", other_choice)
    assert "malformed" in tampered("rnn_mnist", lambda s: s.pop("runs"))
    (tiny / "rnn_msi" / "seed1.npz").write_bytes(b"not a parameter file")
    assert "seed1.npz" in reproduce.stale_reason("rnn_msi", tiny)
    with pytest.raises(ValueError, match="not the one rnn_msi wrote"):
        reproduce.load_model("rnn_msi", seed=1, root=tiny)


def test_a_changed_formula_changes_the_reference_statistics(monkeypatch):
    recorded = recurrent_results.reference_statistics()
    assert (
        fingerprint.statistics_problem(recorded, recurrent_results.reference_statistics()) is None
    )
    from mfbook import rnn

    original = rnn.forward

    def leakier(params, x, eps, eps_out, alpha, noise=None):
        return original(params, x, eps, eps_out, alpha * 0.999, noise)

    monkeypatch.setattr(rnn, "forward", leakier)
    monkeypatch.setattr("mfbook.rnn_nn.forward", leakier)
    problem = fingerprint.statistics_problem(recorded, recurrent_results.reference_statistics())
    assert problem is not None and "differ" in problem


def test_the_recurrent_experiments_are_known_by_name():
    assert set(recurrent_results.RECURRENT) <= set(reproduce.names())
    exp = recurrent_results.RECURRENT["rnn_mnist_bptt"]
    assert exp.lr_sweep and exp.config.method == "bptt" and len(exp.seeds) >= 3
    assert dataclasses.replace(exp.config, method="gbptt", name="rnn_mnist") == (
        recurrent_results.RECURRENT["rnn_mnist"].config
    )
