"""The parameter files of stored results: compressed npz, checked before they are used."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfbook.io import atomic_write, sha256


def save_params(path: Path, model) -> Path:
    """The full parameters of a trained model, compressed (float32), written atomically."""
    arrays = {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def read_params(path: Path, expected: dict, recorded_sha256: str | None, name: str) -> dict:
    """The arrays of ``path``, a parameter file of stored result ``name``: its sha256 must be
    the ``recorded`` one, and its arrays the names, shapes of ``expected`` (a state dict), and
    finite. Anything else raises ``ValueError`` naming the result and the file."""
    if recorded_sha256 is None or sha256(path) != recorded_sha256:
        raise ValueError(
            f"stored result {name}: its file {path} is not the one {name} wrote (its sha256 "
            f"differs from summary.json's); regenerate: python -m mfbook reproduce {name} --force"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:
        raise ValueError(f"stored parameters {path} are corrupted: {err}") from err
    if set(arrays) != set(expected):
        raise ValueError(f"{path} holds {sorted(arrays)}, the model needs {sorted(expected)}")
    for k, v in arrays.items():
        if v.shape != tuple(expected[k].shape) or not np.isfinite(v).all():
            raise ValueError(f"{path}: {k} has shape {v.shape} or non-finite values")
    return arrays
