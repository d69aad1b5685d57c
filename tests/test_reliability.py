"""Reliability: numerical safety (property-based), runs killed mid-way that resume exactly, and
files written atomically, never through a symbolic link."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mfbook import assignments, gbp
from mfbook.checkpoint import REQUIRED, load_checkpoint, save_checkpoint
from mfbook.cli import write_history
from mfbook.nn import MeanFieldMLP
from mfbook.train import preset, train

# --- numerical safety --------------------------------------------------------------------------


@st.composite
def networks(draw):
    """Random small networks with edge-case parameters: pi exactly 0 or 1, xi = 0, large m,
    all-zero input rows (Delta = 0), float32 or float64."""
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    batch = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    m_scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e3]))
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        shape = (n_out, n_in)
        kind = draw(st.sampled_from(["zero", "one", "mixed", "random"]))
        pi = torch.rand(shape, generator=g, dtype=dtype)
        if kind == "zero":
            pi.zero_()
        elif kind == "one":
            pi.fill_(1.0)
        elif kind == "mixed":
            pi = (pi > 0.5).to(dtype)
        m = m_scale * torch.randn(shape, generator=g, dtype=dtype)
        xi = torch.rand(shape, generator=g, dtype=dtype) * draw(st.sampled_from([0.0, 0.1, 10.0]))
        params.append((pi, m, xi))
    x = torch.rand(batch, sizes[0], generator=g, dtype=dtype)
    if draw(st.booleans()):
        x[0] = 0.0
    y = torch.randint(0, sizes[-1], (batch,), generator=g)
    eps = [torch.randn(batch, n, generator=g, dtype=dtype) for n in sizes[1:]]
    return params, x, y, eps


@settings(max_examples=300, deadline=None)
@given(networks())
def test_forward_and_gradients_stay_finite(net):
    params, x, y, eps = net
    fw = gbp.forward(params, x, eps)
    assert all(torch.isfinite(t).all() for t in (*fw.z, *fw.Delta, fw.probs))
    grads = gbp.gradients(params, x, y, eps)
    assert all(torch.isfinite(g).all() for layer in grads for g in layer)
    assert torch.isfinite(gbp.loss(params, x, y, eps))


@settings(max_examples=100, deadline=None)
@given(networks())
def test_module_backward_stays_finite(net):
    params, x, y, eps = net
    sizes = [params[0][0].shape[1]] + [p[0].shape[0] for p in params]
    model = MeanFieldMLP(sizes, dtype=x.dtype)
    with torch.no_grad():
        for layer, (pi, m, xi) in zip(model.layers, params, strict=True):
            layer.pi.copy_(pi), layer.m.copy_(m), layer.xi.copy_(xi)
    torch.nn.functional.cross_entropy(model(x, eps=eps), y).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert torch.isfinite(model(x, mode="mean")).all()
    assert all(torch.isfinite(mod.weight).all() for mod in model.sample_network()[::2])


# --- interrupted runs --------------------------------------------------------------------------

EPOCHS = 16


def cli_train(out, *extra):
    cmd = [sys.executable, "-m", "mfbook", "train", "--preset", "smoke", "--quiet"]
    return [*cmd, "--epochs", str(EPOCHS), "--device", "cpu", "--out", str(out), *extra]


def strip_time(history):
    return {k: v for k, v in history.items() if k != "seconds"}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_bit_identically(tmp_path, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(cli_train(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGSTOP)  # freeze it mid-run, whatever the machine's load
    stopped_at = load_checkpoint(ckpt)["epoch"]
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0, "the run was not interrupted"
    assert 1 <= stopped_at < EPOCHS, "the run was not interrupted mid-way"
    assert load_checkpoint(ckpt)["epoch"] >= stopped_at  # the file is intact after the kill
    resumed = subprocess.run(cli_train(out), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    reference = train(preset("smoke").replace(epochs=EPOCHS), device="cpu", progress=False)
    history = json.loads((out / "history.json").read_text())
    assert strip_time(history) == strip_time(reference.history)
    state = load_checkpoint(ckpt)
    for key, value in reference.model.state_dict().items():
        assert torch.equal(state["model"][key], value), key


# --- files written atomically, never through a link ---------------------------------------------


def _state() -> dict:
    """A valid checkpoint state with every required field."""
    gen = torch.Generator().get_state()
    state = {"model": {"w": torch.ones(2)}, "config": {"epochs": 1}, "history": {}}
    state |= {"order_gen": gen, "noise_gen": gen, "device_type": "cpu", "kernels": False}
    return dict.fromkeys(REQUIRED, 0) | state


def _grades(folder, name):
    (folder / "no-submissions").mkdir(exist_ok=True)
    assignments.grade_folder(folder / "no-submissions", csv_path=folder / name)


# writer name -> (the file it writes, write(folder, that file's name))
WRITERS = {
    "checkpoint": ("checkpoint.pt", lambda d, n: save_checkpoint(d / n, **_state())),
    "history": ("history.json", lambda d, n: write_history(d, {"epoch": [1, 2]})),
    "student notebook": (
        "01_spike_slab.ipynb",
        lambda d, n: assignments.generate_student(assignments.MASTERS / n, d / n),
    ),
    "grades": ("grades.csv", _grades),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_writers_leave_only_their_file(tmp_path, writer):
    name, write = WRITERS[writer]
    write(tmp_path, name)
    assert (tmp_path / name).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("writer", list(WRITERS))
def test_writers_refuse_a_symlink_and_keep_its_file(tmp_path, writer):
    name, write = WRITERS[writer]
    victim = tmp_path / "victim"
    victim.write_text("not to be overwritten")
    (tmp_path / name).symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        write(tmp_path, name)
    assert victim.read_text() == "not to be overwritten"
    assert (tmp_path / name).is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_history_json_is_the_runs_history(tmp_path):
    history = {"epoch": [1, 2], "test_error_mean": [0.5, 0.25]}
    path = write_history(tmp_path / "new-run", history)
    assert path == tmp_path / "new-run" / "history.json"
    assert json.loads(path.read_text()) == history


def test_a_save_removes_what_a_killed_save_left(tmp_path):
    orphans = [".checkpoint.pt.x8k2m1qa.tmp", "checkpoint.pt.a1b2c3d4.tmp"]  # new and old names
    others = ["other.pt", ".other.pt.x8k2m1qa.tmp", "notes.tmp"]
    for name in orphans + others:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "checkpoint.pt", **_state())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["checkpoint.pt", *others])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["model"]["w"].tolist() == [1.0, 1.0]
