"""The benchmark scripts run and write records that chapter 4 can read (not timed tests)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mfbook.reproduce import load_benchmark

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script, *args):
    out = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_step_benchmark_writes_every_ratio(tmp_path):
    stdout = run(
        "bench_steps.py",
        "--repeats",
        "1",
        "--large",
        "--batch",
        "64",
        "--json",
        str(tmp_path / "steps.json"),
    )
    record = load_benchmark("steps", root=tmp_path)
    keys = {"step-100", "step-mm-100", "step-noise-100", "step-update-100", "step-floor-100"}
    keys |= {"step-torch-100", "user-100", "user-torch-100"}
    keys |= {"infer-mean-100", "infer-mf-100", "infer-mm-100", "infer-square-100"}
    assert keys <= set(record["rows"])
    rows = record["rows"]
    for r in rows.values():
        assert r["gbp_s"] > 0 and r["plain_s"] > 0
        assert r["ratio"] == pytest.approx(r["gbp_s"] / r["plain_s"])
    # each floor is the sum of the parts timed alone, against the whole plain pass
    parts = ("infer-mm-100", "infer-noise-100", "infer-square-100")
    assert rows["infer-floor-100"]["gbp_s"] == pytest.approx(sum(rows[k]["gbp_s"] for k in parts))
    assert rows["infer-floor-100"]["plain_s"] == rows["infer-mf-100"]["plain_s"]
    assert rows["step-floor-100"]["plain_s"] == rows["step-100"]["plain_s"]
    parts = ("step-mm-100", "step-update-100")  # gBP's parts; plain's products and update
    plain_rest = max(rows["step-100"]["plain_s"] - sum(rows[k]["plain_s"] for k in parts), 0.0)
    want = sum(rows[k]["gbp_s"] for k in parts) + rows["step-noise-100"]["gbp_s"] + plain_rest
    assert rows["step-floor-100"]["gbp_s"] == pytest.approx(want)
    assert "train step 784-100-100-10, batch 64" in stdout


def test_epoch_benchmark_states_the_paper_preset_time(tmp_path):
    stdout = run("bench_epochs.py", "--epochs", "2", "--json", str(tmp_path / "epochs.json"))
    record = load_benchmark("epochs", root=tmp_path)
    epoch = record["rows"]["paper-epoch"]["gbp_s"]
    assert record["values"]["paper-run-s"] == pytest.approx(200 * epoch)
    assert record["values"]["paper-speedup"] == pytest.approx(3.0 / epoch)
    assert "vs the reference numpy code" in stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_check_says_when_there_is_no_gpu():
    out = subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1
    assert "no CUDA device" in out.stderr


def test_rnn_benchmark_writes_its_ratio(tmp_path):
    stdout = run(
        "bench_rnn.py", "--repeats", "1", "--batch", "16", "--json", str(tmp_path / "rnn.json")
    )
    row = load_benchmark("rnn", root=tmp_path)["rows"]["rnn-step"]
    assert row["gbp_s"] > 0 and row["plain_s"] > 0 and row["target"] == 2.5
    assert row["ratio"] == pytest.approx(row["gbp_s"] / row["plain_s"])
    assert "RNN training step" in stdout
