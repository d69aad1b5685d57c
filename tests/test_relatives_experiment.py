"""The stored experiment of chapter 10 (mfbook.relatives.experiment through mfbook.reproduce): a
tiny protocol trained for real on tiny stored gBP runs, stored, reloaded, and found stale when
its summary, its curves file or a gBP run it measured changes."""

import json

import pytest
import torch

from mfbook import relatives, reproduce
from mfbook.relatives import experiment
from mfbook.relatives.experiment import Setting
from mfbook.train import PRESETS, preset

TINY = preset("smoke").replace(name="tiny", epochs=1, n_train=600, n_test=300)
SIZES = tuple(TINY.sizes)
FIELDS = ("test_error", "nll", "ece", "sparsity", "step_ratio", "cpu_seconds", "per_seed")


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(PRESETS, "tiny", TINY)
    monkeypatch.setattr(
        reproduce, "EXPERIMENTS", {"tiny": reproduce.Experiment("tiny", (0, 1), (0, 1))}
    )
    small = dict(sizes=SIZES, n_train=600, n_val=200, batch_size=100, epochs=1, tune_epochs=1)
    small |= dict(seeds=(0, 1), n_samples=2, n_shift=50, n_test=300)
    settings = {
        "paper": Setting("tiny", lrs=(1e-2, 1e-1), m_vars=(2 / 784, 2.0), **small),
        "full": Setting("tiny", lrs=(3e-2,), m_vars=(), **small),
    }
    monkeypatch.setattr(experiment, "SETTINGS", settings)
    torch.set_num_threads(1)
    return tmp_path / "results"


def test_the_real_protocol_names_every_method_once():
    assert set(experiment.TRAINED) | {"gbp"} == set(relatives.METHODS)
    assert set(experiment.FIXED) == set(experiment.FIT) == set(experiment.TRAINED)
    assert [s.source for s in experiment.SETTINGS.values()] == ["paper", "full"]
    assert all(len(s.seeds) >= 3 for s in experiment.SETTINGS.values())


@pytest.mark.slow
def test_relatives_is_stored_current_and_goes_stale(tiny):
    reproduce.reproduce("tiny", root=tiny, progress=False)
    s = reproduce.reproduce("relatives", root=tiny, progress=False)
    assert reproduce.stale_reason("relatives", tiny) is None
    assert reproduce.load_summary("relatives", tiny) == json.loads(json.dumps(s))
    for key in ("paper", "full"):
        methods = s["settings"][key]["methods"]
        assert set(methods) == {"bp", "mc_dropout", "bbb", "sparse_vd", "gbp"}
        for name, row in methods.items():
            assert all(f in row for f in FIELDS), (key, name)
            assert 0 <= row["test_error"] <= 1 and 0 <= row["sparsity"] <= 1
            assert set(row["per_seed"]["test_error"]) == {"0", "1"}
            assert len(row["rotation_error"]) == 7 and len(row["noise_entropy"]) == 5
        assert methods["bp"]["step_ratio"] == 1.0
    assert s["methods"] == s["settings"]["paper"]["methods"]
    grid = s["methods"]["bbb"]["grid"]  # the chosen lr and m_var have the least val error
    best = min(grid, key=lambda g: g["val_error"])
    assert len(grid) == 4 and (best["lr"], best["m_var"]) == (
        s["methods"]["bbb"]["lr"],
        s["methods"]["bbb"]["hyper"]["m_var"],
    )
    assert [g["m_var"] for g in s["settings"]["full"]["methods"]["bbb"]["grid"]] == [
        s["methods"]["bbb"]["hyper"]["m_var"]
    ]
    curves = experiment.load_curves(tiny / "relatives")
    assert set(curves["paper"]["gbp"]) == {"0", "1"}
    # reused while current; stale when the curves, the summary or a gBP run change
    stamp = (tiny / "relatives" / "summary.json").stat().st_mtime_ns
    reproduce.reproduce("relatives", root=tiny, progress=False)
    assert (tiny / "relatives" / "summary.json").stat().st_mtime_ns == stamp
    path = tiny / "relatives" / "curves.json"
    original = path.read_bytes()
    path.write_bytes(original + b" ")
    assert "curves.json" in reproduce.stale_reason("relatives", tiny)
    path.write_bytes(original)
    summary_path = tiny / "relatives" / "summary.json"
    text = summary_path.read_text()
    changed = json.loads(text)
    changed["protocol"]["tolerance"] = 0.01
    summary_path.write_text(json.dumps(changed))
    assert "protocol" in reproduce.stale_reason("relatives", tiny)
    changed = json.loads(text)
    changed["reference"][0][0] += 1.0
    summary_path.write_text(json.dumps(changed))
    assert "reference" in reproduce.stale_reason("relatives", tiny)
    changed = json.loads(text)
    changed["sources"]["tiny"]["files"]["seed0.npz"] = "0" * 64
    summary_path.write_text(json.dumps(changed))
    assert "other stored runs of tiny" in reproduce.stale_reason("relatives", tiny)
    summary_path.write_text(text)
    assert reproduce.stale_reason("relatives", tiny) is None
    with open(tiny / "tiny" / "seed0.npz", "ab") as f:  # the gBP run it measured changes
        f.write(b" ")
    assert "it measures tiny, which is not current" in reproduce.stale_reason("relatives", tiny)


def test_an_unknown_name_is_refused():
    with pytest.raises(ValueError, match="relatives"):
        reproduce.reproduce("relative", progress=False)
