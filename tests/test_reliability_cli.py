"""Reliability of the command line: user errors are one line naming the argument (status 2),
and one training at a time holds a run's --out folder (a lock file, recovered when stale)."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

from mfbook import _lock
from mfbook._lock import LOCK_NAME, FolderLocked, folder_lock
from mfbook.cli import main
from mfbook.train import MAX_SEED, train

TRAIN = ["train", "--preset", "smoke", "--epochs", "1", "--device", "cpu", "--quiet"]


def _user_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "args,match",
    [
        (["--device", "nonsense"], "argument --device: must be auto, cpu, cuda or cuda:N"),
        (["--device", "cuda:x"], "argument --device: "),
        (["--seed", "1e20"], "argument --seed: must be a whole number from 0"),
        (["--seed", "-1"], "argument --seed: must be a whole number from 0"),
        (["--seed", str(MAX_SEED + 1)], "argument --seed: "),
        (["--epochs", "0"], "argument --epochs: must be a positive whole number"),
        (["--out", ""], "argument --out: must name a folder, got an empty string"),
    ],
)
def test_bad_train_arguments_are_one_line_naming_the_argument(capsys, args, match):
    assert match in _user_error(capsys, ["train", *args])


def test_an_out_that_is_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "file").write_text("mine")
    for out in (tmp_path / "file", tmp_path / "file" / "below"):
        assert f"argument --out: {tmp_path / 'file'} is an existing file" in _user_error(
            capsys, ["train", "--out", str(out)]
        )
    assert (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("name", ["history.json", "checkpoint.pt"])
def test_a_symbolic_link_in_out_is_refused_before_training(capsys, tmp_path, name):
    precious = tmp_path / "precious"
    precious.write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(precious)
    assert main([*TRAIN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "argument --out:" in err and "refusing to write through a symbolic link" in err
    assert precious.read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [name]  # nothing trained, nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
@pytest.mark.parametrize("command", [["train"], ["reproduce", "paper"]])
def test_cuda_without_a_gpu_is_a_user_error(capsys, command):
    err = _user_error(capsys, [*command, "--device", "cuda"])
    assert "argument --device: device 'cuda' was requested but no CUDA device" in err


def test_train_refuses_seeds_beyond_the_generators():
    with pytest.raises(ValueError, match="seed must be a non-negative int, at most"):
        train("smoke", device="cpu", progress=False, seed=MAX_SEED + 1)


def test_a_user_error_has_no_traceback():
    cmd = [sys.executable, "-m", "mfbook", "train", "--device", "nonsense"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_checkpoint_of_another_run_is_one_line(capsys, tmp_path):
    assert main([*TRAIN, "--out", str(tmp_path)]) == 0
    assert main([*TRAIN[:4], "2", *TRAIN[5:], "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "belongs to another configuration" in err and "--no-resume" in err
    assert len(err.strip().splitlines()) == 1


# --- the lock on --out ---------------------------------------------------------------------------

HOLD = """
import sys, time
from mfbook._lock import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the lock of tmp_path / "run"."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", HOLD, str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
    yield proc, out
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=60)


def test_a_second_run_on_a_locked_folder_is_refused(holder):
    proc, out = holder
    run = subprocess.run(
        [sys.executable, "-m", "mfbook", *TRAIN, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"is in use by another training (pid {proc.pid} on " in run.stderr
    assert ", started 20" in run.stderr
    assert not (out / "checkpoint.pt").exists()  # it trained nothing
    held = json.loads((out / LOCK_NAME).read_text())
    assert held["pid"] == proc.pid and held["hostname"] == socket.gethostname()
    assert proc.poll() is None  # the holder runs on, its lock intact


def test_a_stale_lock_is_recovered_with_a_warning(holder, capsys):
    proc, out = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert (out / LOCK_NAME).exists()  # killed outright: the lock stays behind
    with pytest.warns(UserWarning, match=f"removing the stale lock .* of pid {proc.pid} on"):
        assert main([*TRAIN, "--out", str(out)]) == 0
    assert not (out / LOCK_NAME).exists()
    assert (out / "history.json").is_file()


def test_the_lock_is_removed_on_an_exception(tmp_path):
    with pytest.raises(KeyboardInterrupt), folder_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        raise KeyboardInterrupt
    assert not (tmp_path / LOCK_NAME).exists()
    refused = pytest.raises(FolderLocked, match=f"pid {os.getpid()} on")
    with folder_lock(tmp_path), refused, folder_lock(tmp_path):
        pass
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_checkpoint_error_in_a_locked_run_releases_the_lock(tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main([*TRAIN, "--out", str(tmp_path)]) == 1
    assert "is corrupted or not a checkpoint" in capsys.readouterr().err
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize(
    "content,match",
    [
        ({"pid": 1, "hostname": "another-host", "started": "x"}, "pid 1 on another-host"),
        ("half a lo", "an unknown process"),
    ],
)
def test_locks_that_cannot_be_judged_stale_are_respected(tmp_path, content, match):
    text = content if isinstance(content, str) else json.dumps(content)
    (tmp_path / LOCK_NAME).write_text(text)
    with pytest.raises(FolderLocked, match=match), folder_lock(tmp_path):
        pass
    assert (tmp_path / LOCK_NAME).read_text() == text


def test_a_lock_taken_over_by_another_process_is_not_removed(tmp_path):
    with folder_lock(tmp_path) as path:
        path.write_text(json.dumps({"pid": 1, "hostname": "h", "started": "s"}))
    assert path.exists()
    assert _lock._running(os.getpid()) and not _lock._stale({"hostname": "h", "pid": 10**9})
