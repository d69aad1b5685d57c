"""Stored results and the command line, on a tiny experiment."""

import json
import os
import subprocess
import sys

import pytest
import torch

from mfbook import fingerprint, reproduce
from mfbook._params_file import read_params
from mfbook.checkpoint import load_checkpoint
from mfbook.spike_slab import ENTROPY_CONVENTIONS
from mfbook.train import PRESETS, preset

TINY = preset("smoke").replace(name="tiny", epochs=1, n_train=600, n_test=300)


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(PRESETS, "tiny", TINY)
    experiments = {
        "tiny": reproduce.Experiment("tiny", (0, 1)),
        "sweep": reproduce.Experiment(
            "tiny", changes=(("name", "sweep"),), sweep=("n_train", (300, 600))
        ),
        "rates": reproduce.Experiment(
            "tiny",
            (0, 1),
            changes=(("name", "rates"), ("n_val", 200)),
            sweep=("lr", (0.01, 0.1)),
            keep_sweep=False,
        ),
        "tiny_variance": reproduce.Experiment(
            "tiny",
            (0,),
            changes=(
                ("name", "tiny_variance"),
                ("backward_variance", "as_published_2020"),
                ("dtype", "float64"),
            ),
        ),
    }
    monkeypatch.setattr(reproduce, "EXPERIMENTS", experiments)
    analyses = {
        "credit": ("tiny",),
        "entropy": ("sweep",),
        "variants": ("tiny", "tiny_variance"),
    }
    monkeypatch.setattr(reproduce, "ANALYSES", analyses)
    return tmp_path / "results"


def test_reproduce_stores_small_results_keyed_by_config(tiny):
    s = reproduce.reproduce("tiny", root=tiny, progress=False)
    assert s["seeds"] == [0, 1] and s["config"]["name"] == "tiny"
    assert set(s["final_mean"]) == {"test_error_mean", "test_error_mf", "test_error_sample"}
    assert sorted(p.name for p in (tiny / "tiny").iterdir()) == ["seed0.npz", "summary.json"]
    raw_bytes = 3 * 4 * (784 * 32 + 32 * 10)  # pi, m, xi in float32
    assert (tiny / "tiny" / "seed0.npz").stat().st_size < raw_bytes
    model = reproduce.load_model("tiny", 0, root=tiny)
    errs = s["runs"]["0"]["history"]["test_error_mean"]
    assert len(errs) == 1 and 0 <= errs[0] <= 1
    assert float(model.spike_slabs()[0].pi.max()) <= 1
    # reused while the config is unchanged, recomputed when it changes or with force
    stamp = (tiny / "tiny" / "summary.json").stat().st_mtime_ns
    reproduce.reproduce("tiny", root=tiny, progress=False)
    assert (tiny / "tiny" / "summary.json").stat().st_mtime_ns == stamp
    index = (tiny / "README.md").read_text()
    mean = 100 * s["final_mean"]["test_error_sample"]
    assert "| tiny | 2 |" in index and f"{mean:.2f}%" in index
    assert reproduce.is_current("tiny", root=tiny)
    PRESETS["tiny"] = TINY.replace(lr=0.05)
    assert not reproduce.is_current("tiny", root=tiny)  # stale: the preset changed
    s2 = reproduce.reproduce("tiny", root=tiny, progress=False)
    assert s2["config"]["lr"] == 0.05
    assert reproduce.is_current("tiny", root=tiny) and not reproduce.is_current("sweep", root=tiny)
    with pytest.raises(ValueError, match="experiment"):
        reproduce.is_current("credit", root=tiny)


def test_credit_analysis_reads_the_stored_model(tiny):
    reproduce.reproduce("tiny", root=tiny, progress=False)
    c = reproduce.reproduce("credit", root=tiny)
    assert len(c["fractions"]) == len(TINY.sizes) - 1
    assert all(sum(f.values()) == pytest.approx(1) for f in c["fractions"])
    assert set(c["perturbation"][0]) >= {"fraction", "error_vip", "error_random", "error_uip"}
    assert len(c["subnetwork_errors"]) == 100
    assert set(c["seeds"]) == {"0"}  # the kept seeds of tiny
    ctl = c["seeds"]["0"]["controls"]
    assert ctl["counts"][-1] == ctl["n_vip"] and ctl["n_trained_variable"] <= ctl["n_variable"]
    for key in ("rank_vip", "rank_abs_mu", "random_variable", "random_trained", "uip_trained"):
        assert len(ctl[key]) == 5 and all(0 <= e <= 1 for e in ctl[key])
    assert ctl["rank_vip"][0] == ctl["random_variable"][0]  # nothing removed yet


def test_sweep_and_entropy_analysis(tiny):
    s = reproduce.reproduce("sweep", root=tiny, progress=False)
    assert set(s["runs"]) == {"n300-s0", "n600-s0"}
    assert s["runs"]["n600-s0"]["config"]["n_train"] == 600
    assert sorted(p.name for p in (tiny / "sweep").iterdir()) == [
        "n300-s0.npz",
        "n600-s0.npz",
        "summary.json",
    ]
    model = reproduce.load_model("sweep", root=tiny, run="n600-s0")
    assert model.sizes == list(TINY.sizes)
    e = reproduce.reproduce("entropy", root=tiny)
    assert [r["n_train"] for r in e["runs"].values()] == [300, 600]
    for r in e["runs"].values():
        assert set(r["layer_entropy"]) == set(ENTROPY_CONVENTIONS)
        assert all(len(v) == len(TINY.sizes) - 1 for v in r["layer_entropy"].values())
    index = (tiny / "README.md").read_text()
    assert "| sweep n300 | 1 |" in index and "| n600-s0 | 600 | reference |" in index
    with pytest.raises(ValueError, match="no stored parameters for run 'n900'"):
        reproduce.load_model("sweep", root=tiny, run="n900")


def test_corrupted_stored_results_give_clear_errors(tiny):
    reproduce.reproduce("tiny", root=tiny, progress=False)
    path = tiny / "tiny" / "seed0.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"seed0.npz is not the one tiny wrote \(its sha256"):
        reproduce.load_model("tiny", 0, root=tiny)
    with pytest.raises(ValueError, match="corrupted"):  # even where the hash was recorded so
        read_params(path, {}, fingerprint.sha256(path), "tiny")
    (tiny / "tiny" / "summary.json").write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        reproduce.load_summary("tiny", root=tiny)
    with pytest.raises(FileNotFoundError, match="python -m mfbook reproduce credit"):
        reproduce.load_summary("credit", root=tiny)
    with pytest.raises(ValueError, match="name must be one of"):
        reproduce.load_summary("nope", root=tiny)


def test_a_reproduction_removes_what_a_killed_one_left(tiny):
    reproduce.reproduce("tiny", root=tiny, progress=False)
    orphans = {
        tiny: [".README.md.k2j4l5m6.tmp"],
        tiny / "tiny": [".summary.json.abc_1234.tmp", ".seed0.npz.x8k2m1qa.tmp"],
    }
    for folder, names in orphans.items():
        for name in names:
            (folder / name).write_bytes(b"half a file")
    (tiny / "tiny" / "notes.txt").write_text("mine")
    reproduce.reproduce("tiny", root=tiny, progress=False)  # reused, and the leftovers go
    assert sorted(p.name for p in (tiny / "tiny").iterdir()) == [
        "notes.txt",
        "seed0.npz",
        "summary.json",
    ]
    assert not any(p.name.endswith(".tmp") for p in tiny.iterdir())


# stored-result writer -> (the file it writes, write(folder, that file's name))
RESULT_WRITERS = {
    "summary": ("summary.json", lambda d, n: reproduce._write_json(d / n, {"name": "x"})),
    "params": ("seed0.npz", lambda d, n: reproduce.save_params(d / n, torch.nn.Linear(3, 2))),
    "index": ("README.md", lambda d, n: reproduce.write_index(d)),
}


@pytest.mark.parametrize("writer", list(RESULT_WRITERS))
def test_result_writers_refuse_a_symlink_and_keep_its_file(tiny, writer):
    name, write = RESULT_WRITERS[writer]
    tiny.mkdir()
    assert write(tiny, name) == tiny / name  # a plain file is written
    assert sorted(p.name for p in tiny.iterdir()) == [name]
    victim = tiny / "victim"
    victim.write_text("not to be overwritten")
    (tiny / name).unlink()
    (tiny / name).symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        write(tiny, name)
    assert victim.read_text() == "not to be overwritten" and (tiny / name).is_symlink()
    assert sorted(p.name for p in tiny.iterdir()) == sorted([name, "victim"])


def test_cli_trains_a_preset(tmp_path):
    env = dict(os.environ, MFBOOK_OFFLINE="1")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mfbook", "train", "--preset", "smoke", "--epochs", "1"]
    proc = subprocess.run(
        [*cmd, "--device", "cpu", "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout.strip().splitlines()[-1])["final"]
    assert set(final) == {"test_error_mean", "test_error_mf", "test_error_sample"}
    assert json.loads((out / "history.json").read_text())["epoch"] == [1]
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1


def test_cli_rejects_unknown_names():
    proc = subprocess.run(
        [sys.executable, "-m", "mfbook", "reproduce", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_stored_benchmarks_load_and_bad_ones_are_named(tmp_path):
    gpu = reproduce.load_benchmark("gpu-h100")
    assert gpu["environment"]["device"].startswith("cuda")
    assert gpu["rows"]["step-4096"]["ratio"] == pytest.approx(
        gpu["rows"]["step-4096"]["gbp_s"] / gpu["rows"]["step-4096"]["plain_s"]
    )
    for name in ("cpu-steps", "cpu-epochs"):
        assert reproduce.load_benchmark(name)["environment"]["device"] == "cpu"
    with pytest.raises(FileNotFoundError, match="no stored benchmark .*make bench"):
        reproduce.load_benchmark("nothing", root=tmp_path)
    (tmp_path / "bad.json").write_text('{"rows": [{"case": "x"}]}')
    with pytest.raises(ValueError, match="bad.json is not a benchmark record"):
        reproduce.load_benchmark("bad", root=tmp_path)
    (tmp_path / "torn.json").write_text('{"rows": [')
    with pytest.raises(ValueError, match="torn.json is not a benchmark record"):
        reproduce.load_benchmark("torn", root=tmp_path)


# --- fingerprints, file hashes and staged writes ---------------------------------------------
def test_a_result_records_its_numerics_and_file_hashes(tiny):
    s = reproduce.reproduce("tiny", root=tiny, progress=False)
    assert set(s["numerics"]) == {"fingerprint", "kernels", "threads", "torch", "cpu", "reference"}
    assert s["files"] == {"seed0.npz": fingerprint.sha256(tiny / "tiny" / "seed0.npz")}
    assert reproduce.stale_reason("tiny", root=tiny) is None


def test_changed_numerics_make_a_result_stale(tiny, monkeypatch):
    reproduce.reproduce("tiny", root=tiny, progress=False)
    real = fingerprint._tiny_run

    def other_numbers(method, dtype="float32"):
        return [*real(method, dtype), torch.ones(1)]  # one more number, as a rounding change

    monkeypatch.setattr(fingerprint, "_tiny_run", other_numbers)
    reproduce._numerics_problem.cache_clear()
    reason = reproduce.stale_reason("tiny", root=tiny)
    assert reason.startswith("stored result tiny: its numerics fingerprint")
    assert not reproduce.is_current("tiny", root=tiny)
    reproduce._numerics_problem.cache_clear()


def test_on_another_cpu_the_float64_reference_statistics_decide(tiny, monkeypatch):
    """Another CPU rounds float32 products otherwise, so the fingerprint cannot be compared
    there; the float64 reference statistics can, and they see a change of the formulas."""
    reproduce.reproduce("tiny", root=tiny, progress=False)
    monkeypatch.setattr(fingerprint, "_cpu", lambda: "another cpu")
    reproduce._numerics_problem.cache_clear()
    assert reproduce.stale_reason("tiny", root=tiny) is None
    real = fingerprint._tiny_run

    def other_formula(method, dtype="float32"):  # e.g. a changed noise or update rule
        out = real(method, dtype)
        return [out[0] * (1 + 1e-7), *out[1:]]

    monkeypatch.setattr(fingerprint, "_tiny_run", other_formula)
    reproduce._numerics_problem.cache_clear()
    reason = reproduce.stale_reason("tiny", root=tiny)
    assert reason.startswith("stored result tiny: its reference statistics differ from today's")
    reproduce._numerics_problem.cache_clear()


def test_the_reference_statistics_agree_across_thread_counts():
    """Their tolerance covers another order of summation (here: 1 and 2 threads)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fingerprint.reference_statistics()
        torch.set_num_threads(2)
        assert fingerprint._reference_problem(one) is None
    finally:
        torch.set_num_threads(before)


def test_a_record_without_reference_statistics_on_another_cpu_cannot_be_compared(monkeypatch):
    monkeypatch.setattr(fingerprint, "_cpu", lambda: "another cpu")
    recorded = {"fingerprint": "0" * 16, "torch": torch.__version__, "cpu": "first cpu"}
    with pytest.raises(fingerprint.NotComparable, match="computed with cpu first cpu"):
        fingerprint.numerics_problem(recorded)
    bad = {**recorded, "reference": [[1.0, 2.0]]}
    assert "do not fit today's tiny run" in fingerprint.numerics_problem(bad)


@pytest.mark.parametrize("change", ["untrained", "deleted", "missing record"])
def test_a_replaced_or_deleted_parameter_file_is_named(tiny, change):
    reproduce.reproduce("tiny", root=tiny, progress=False)
    path = tiny / "tiny" / "seed0.npz"
    if change == "untrained":  # the same shape, the initial parameters
        reproduce.save_params(path, reproduce.build_model(TINY, seed=0))
    elif change == "deleted":
        path.unlink()
    else:
        summary = json.loads((tiny / "tiny" / "summary.json").read_text())
        del summary["files"]
        (tiny / "tiny" / "summary.json").write_text(json.dumps(summary))
    reason = reproduce.stale_reason("tiny", root=tiny)
    assert reason.startswith("stored result tiny:")
    assert ("file hashes" in reason) if change == "missing record" else (str(path) in reason)
    error = FileNotFoundError if change == "deleted" else ValueError
    with pytest.raises(error, match="seed0.npz"):
        reproduce.load_model("tiny", 0, root=tiny)


def test_an_interrupted_reproduce_leaves_the_old_result_whole(tiny, monkeypatch):
    reproduce.reproduce("tiny", root=tiny, progress=False)
    folder = tiny / "tiny"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_train = reproduce.train

    def killed_at_seed_1(config, **kw):
        if kw["seed"] == 1:
            raise KeyboardInterrupt
        return real_train(config, **kw)

    monkeypatch.setattr(reproduce, "train", killed_at_seed_1)
    PRESETS["tiny"] = TINY.replace(lr=0.05)  # stale: seed 0 is trained anew, then the kill
    with pytest.raises(KeyboardInterrupt):
        reproduce.reproduce("tiny", root=tiny, progress=False, force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # old files, all of them
    assert sorted(p.name for p in tiny.iterdir() if p.name.startswith(".")) == []


def test_a_rate_sweep_on_held_out_images_keeps_no_parameters(tiny):
    s = reproduce.reproduce("rates", root=tiny, progress=False)
    assert set(s["runs"]) == {"lr0.01-s0", "lr0.1-s0", "lr0.01-s1", "lr0.1-s1"}
    assert s["kept"] == [] and sorted(p.name for p in (tiny / "rates").iterdir()) == [
        "summary.json"
    ]
    assert all(
        set(r["final"]) == {"val_error_mean", "val_error_mf", "val_error_sample"}
        for r in s["runs"].values()
    )
    assert s["runs"]["lr0.1-s1"]["config"]["lr"] == 0.1
    index = (tiny / "README.md").read_text()
    assert "| rates lr0.01 | 2 |" in index and "(val.)" in index


def test_variants_analysis_reads_every_variant_and_goes_stale_with_them(tiny):
    for name in ("tiny", "tiny_variance"):
        reproduce.reproduce(name, root=tiny, progress=False)
    v = reproduce.reproduce("variants", root=tiny)
    assert set(v["variants"]) == {"tiny", "tiny_variance"}
    seed0 = v["variants"]["tiny_variance"]["0"]
    assert set(seed0) == {"fractions", "perturbation", "layer_entropy", "final"}
    assert set(seed0["layer_entropy"]) == set(ENTROPY_CONVENTIONS)
    assert seed0["perturbation"]["fraction"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert reproduce.analysis_stale_reason("variants", root=tiny) is None
    PRESETS["tiny"] = TINY.replace(lr=0.05)
    assert "reads tiny, which is not current" in reproduce.analysis_stale_reason(
        "variants", root=tiny
    )
    with pytest.raises(ValueError, match="analysis must be one of"):
        reproduce.analysis_stale_reason("tiny", root=tiny)
