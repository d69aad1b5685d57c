"""The MNIST download: the IDX ``.gz`` files from ``MIRRORS``, verified before they are kept.

The third source of ``mfbook.data`` (chapter 4), skipped when ``MFBOOK_OFFLINE=1``. :func:`fetch`
is the only network access of the package; the tests replace it.
"""

from __future__ import annotations

import http.client
import urllib.request
import warnings
from pathlib import Path

from mfbook._mnist_idx import (
    MAX_IDX_BYTES,
    MNISTFormatError,
    MNISTNotFoundError,
    gunzip,
    parse_idx,
    verify,
)
from mfbook.io import atomic_write

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
DOWNLOAD_TIMEOUT = 10.0  # seconds per network operation, so an offline machine fails fast


def fetch(url: str, timeout: float) -> bytes:
    """Return the bytes at ``url``: the only network access of the package (tests replace it)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        blob = response.read(MAX_IDX_BYTES + 1)
    if len(blob) > MAX_IDX_BYTES:
        raise MNISTFormatError(f"{url}: more than {MAX_IDX_BYTES} bytes")
    return blob


def download(folder: Path, names: list[str]) -> None:
    """Download ``name.gz`` for each name into ``folder``, verified before it is written."""
    dead: set[str] = set()  # mirrors that failed to answer: not asked again in this call
    for name in names:
        errors = []
        for base in MIRRORS:
            url = f"{base}{name}.gz"
            if base in dead:
                continue
            try:
                blob = fetch(url, DOWNLOAD_TIMEOUT)
                verify(name, parse_idx(gunzip(blob, url), name, url), url)
            except ValueError as err:  # bad content: a format or sha256 error
                warnings.warn(f"MNIST download rejected: {err}", stacklevel=5)
                errors.append(str(err))
                continue
            except (OSError, EOFError, http.client.HTTPException) as err:  # network
                dead.add(base)
                errors.append(f"{url}: {err}")
                continue
            try:
                atomic_write(folder / f"{name}.gz", blob)
            except OSError as err:
                raise MNISTNotFoundError(f"could not write {folder / name}.gz: {err}") from err
            break
        else:
            raise MNISTNotFoundError("; ".join(errors) or "no mirror left")
