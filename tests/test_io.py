"""The atomic writer (mfbook.io): replace or keep, never half a file, never through a link."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import threading

import pytest

from mfbook.io import atomic_target, atomic_write, clean_orphans


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00bytes\xff", b"\x00bytes\xff"),
        ("grüße\nzwei Zeilen\n", "grüße\nzwei Zeilen\n".encode()),
        (lambda f: f.write(b"from a callable"), b"from a callable"),
    ],
    ids=["bytes", "str", "callable"],
)
def test_writes_bytes_str_and_callables(tmp_path, data, expected):
    path = tmp_path / "new" / "folder" / "file.bin"  # missing folders are created
    assert atomic_write(path, data) == path
    assert path.read_bytes() == expected
    assert names(path.parent) == ["file.bin"]


def test_replaces_the_old_content(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write(path, "old")
    atomic_write(str(path), "new")
    assert path.read_text() == "new" and names(tmp_path) == ["f.txt"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    path = tmp_path / "f.txt"
    path.write_text("old content")
    seen = []

    def broken(f):
        f.write(b"half of the new con")
        f.flush()
        seen.append(names(tmp_path))
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, broken)
    assert path.read_text() == "old content"
    assert names(tmp_path) == ["f.txt"]
    # it did write beside the target, in a temporary file named after it
    (tmp,) = set(seen[0]) - {"f.txt"}
    assert tmp.startswith(".f.txt.") and tmp.endswith(".tmp")


def test_the_target_is_untouched_until_the_writer_is_done(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def write(f):
        f.write(b"new")
        f.flush()
        assert path.read_text() == "old"  # a reader still sees the whole old file

    atomic_write(path, write)
    assert path.read_text() == "new"


def test_rejects_other_data(tmp_path):
    with pytest.raises(TypeError, match="bytes, str or a callable"):
        atomic_write(tmp_path / "f", 42)
    assert names(tmp_path) == []


@pytest.mark.parametrize("form", ["bytes", "callable", "target"])
def test_refuses_a_symlink_and_leaves_its_file_untouched(tmp_path, form):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    called = []
    with pytest.raises(OSError, match="symbolic link") as err:
        if form == "bytes":
            atomic_write(link, b"overwritten")
        elif form == "callable":
            atomic_write(link, lambda f: called.append(f.write(b"overwritten")))
        else:
            with atomic_target(link) as tmp:
                called.append(tmp)
    assert err.value.errno == errno.ELOOP and str(link) in str(err.value)
    assert called == []  # refused before anything was written
    assert victim.read_text() == "precious"
    assert link.is_symlink() and os.readlink(link) == str(victim)
    assert names(tmp_path) == ["out.txt", "victim.txt"]


def test_refuses_a_dangling_symlink(tmp_path):
    link = tmp_path / "out.txt"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OSError, match="symbolic link"):
        atomic_write(link, "x")
    assert not (tmp_path / "nowhere").exists() and link.is_symlink()


def test_refuses_a_link_made_while_writing(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.txt"
    with pytest.raises(OSError, match="symbolic link"):
        atomic_write(link, lambda f: link.symlink_to(victim))
    assert victim.read_text() == "precious" and names(tmp_path) == ["out.txt", "victim.txt"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    path = atomic_write(tmp_path / "f", b"x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    with open(tmp_path / "by-open", "wb"):  # the same as open() gives a new file
        pass
    assert stat.S_IMODE((tmp_path / "by-open").stat().st_mode) == 0o666 & ~mask


def test_atomic_target_accepts_a_file_replaced_by_a_tool(tmp_path):
    path = tmp_path / "lib.so"
    with atomic_target(path) as tmp:
        assert tmp.parent == tmp_path and tmp.is_file() and tmp.read_bytes() == b""
        tmp.unlink()  # what a compiler may do: remove the output, then create it anew
        tmp.write_bytes(b"\x7fELF")
    assert path.read_bytes() == b"\x7fELF" and names(tmp_path) == ["lib.so"]


def test_atomic_target_removes_the_temporary_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="compiler failed"), atomic_target(tmp_path / "x") as t:
        t.write_bytes(b"partial")
        raise RuntimeError("compiler failed")
    assert names(tmp_path) == []


def test_concurrent_writers_never_show_half_a_file(tmp_path):
    path = tmp_path / "f.bin"
    contents = [bytes([i]) * 200_000 for i in range(4)]
    atomic_write(path, contents[0])
    seen, stop = set(), threading.Event()

    def read():
        while not stop.is_set():
            seen.add(path.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        writers = [threading.Thread(target=atomic_write, args=(path, c)) for c in contents * 5]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
    finally:
        stop.set()
        reader.join()
    assert seen <= set(contents)
    assert names(tmp_path) == ["f.bin"]


def test_clean_orphans_removes_only_the_temporaries_of_its_target(tmp_path):
    keep = [
        "checkpoint.pt",  # the target
        "checkpoint.pt.tmp",  # not a temporary name of ours
        ".checkpoint.pt.tmp",
        ".checkpoint.pt.a.b.tmp",  # a temporary of the target "checkpoint.pt.a"
        ".other.pt.abc123.tmp",  # another target's
        ".checkpoint.pt.abc123.tmp.keep",
        "xcheckpoint.pt.abc123.tmp",
    ]
    orphans = [".checkpoint.pt.abc_12xy.tmp", ".checkpoint.pt.k2j4l5m6.tmp", "checkpoint.pt.a1.tmp"]
    for name in keep + orphans:
        (tmp_path / name).write_text(name)
    (tmp_path / ".checkpoint.pt.dir00000.tmp").mkdir()  # a folder is not removed
    assert clean_orphans(tmp_path, "checkpoint.pt") == len(orphans)
    assert names(tmp_path) == sorted([*keep, ".checkpoint.pt.dir00000.tmp"])
    assert clean_orphans(tmp_path, "checkpoint.pt") == 0
    assert clean_orphans(tmp_path / "missing", "checkpoint.pt") == 0


def test_clean_orphans_removes_what_a_killed_writer_left(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("{}")
    script = (
        "import os, signal, sys\n"
        "from mfbook.io import atomic_write\n"
        "def write(f):\n"
        "    f.write(b'{half')\n"
        "    f.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic_write(sys.argv[1], write)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (leftover,) = set(names(tmp_path)) - {"summary.json"}
    assert leftover.startswith(".summary.json.") and leftover.endswith(".tmp")
    assert path.read_text() == "{}"  # the target was never touched
    assert clean_orphans(tmp_path, "summary.json") == 1
    assert names(tmp_path) == ["summary.json"]


def test_a_staged_folder_replaces_the_old_one_only_when_complete(tmp_path):
    from mfbook.io import recover_folder, staged_folder

    target = tmp_path / "result"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(target) as staging:
        (staging / "new.txt").write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]
    with staged_folder(target) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    # a crash between the two renames: the old folder aside, the new one never arrived
    target.rename(tmp_path / ".result.old")
    (tmp_path / ".result.staging").mkdir()
    recover_folder(target)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]
