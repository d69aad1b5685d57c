"""Reliability when the disk fills: every write says so, naming the file, and keeps the old one."""

import errno
import io

import pytest
import torch

from mfbook import checkpoint as ckpt_mod
from mfbook import io as mfbook_io
from mfbook.io import atomic_write, exclusive_write


class FillsUp(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does (``ENOSPC``)."""

    def __init__(self, f, room):
        self.f, self.room = f, room

    def writable(self):
        return True

    def write(self, b):
        if len(b) > self.room:
            self.f.write(bytes(b[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self.f.write(b)


def _full_disk_writers():
    def plain(f):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    def torch_save(f):  # torch raises RuntimeError("... unexpected pos ..."), ENOSPC inside
        torch.save({"w": torch.ones(10_000)}, io.BufferedWriter(FillsUp(f, 1000)))

    return {"OSError": plain, "torch.save": torch_save}


@pytest.mark.parametrize("writer", ["OSError", "torch.save"])
def test_a_full_disk_is_named_and_keeps_the_old_file(tmp_path, writer):
    path = atomic_write(tmp_path / "file.bin", b"the old content")
    with pytest.raises(OSError, match=f"no space left on device while writing {path}") as err:
        atomic_write(path, _full_disk_writers()[writer])
    assert err.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"the old content"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temporary file left


def test_torchs_error_is_kept_when_the_disk_is_not_full(tmp_path):
    def broken(f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    with pytest.raises(RuntimeError, match="unexpected pos"):
        atomic_write(tmp_path / "file.bin", broken)
    assert list(tmp_path.iterdir()) == []


def test_other_write_errors_are_kept(tmp_path):
    def refused(f):
        raise PermissionError(errno.EACCES, "Permission denied")

    with pytest.raises(PermissionError, match="Permission denied"):
        atomic_write(tmp_path / "file.bin", refused)
    assert list(tmp_path.iterdir()) == []


def _state() -> dict:
    gen = torch.Generator().get_state()
    return dict(
        model={"w": torch.ones(2)},
        config={"epochs": 1},
        seed=0,
        epoch=0,
        history={},
        order_gen=gen,
        noise_gen=gen,
        device_type="cpu",
        kernels=False,
    )


def test_a_checkpoint_on_a_full_disk(tmp_path, monkeypatch):
    path = ckpt_mod.save_checkpoint(tmp_path / "c.pt", **_state())
    before = path.read_bytes()
    real_save = torch.save

    def save_onto_a_full_disk(obj, f):  # in memory as usual, onto the disk until it is full
        real_save(obj, f if isinstance(f, io.BytesIO) else io.BufferedWriter(FillsUp(f, 200)))

    monkeypatch.setattr(ckpt_mod.torch, "save", save_onto_a_full_disk)
    with pytest.raises(OSError, match=f"no space left on device while writing {path}"):
        ckpt_mod.save_checkpoint(path, **_state())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_lock_file_on_a_full_disk_is_named_and_removed(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mfbook_io.os, "fsync", full)
    path = tmp_path / "train.lock"
    with pytest.raises(OSError, match=f"no space left on device while writing {path}"):
        exclusive_write(path, b"{}")
    assert list(tmp_path.iterdir()) == []
