"""Checkpoints: atomic saves, safe loads (``weights_only=True``), clear errors (chapter 4).

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts, so that
``torch.load(..., weights_only=True)`` can read it without running any code from the file.
"""

from __future__ import annotations

from pathlib import Path

import torch

import mfbook
from mfbook.io import atomic_write, clean_orphans

FORMAT = "mfbook-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("model", "config", "seed", "epoch", "history", "order_gen", "noise_gen", "device_type")


def _compatible(a: str, b: str) -> bool:
    """Same major.minor library version."""
    return a.split(".")[:2] == b.split(".")[:2]


def save_checkpoint(path: str | Path, **state) -> Path:
    """Write ``state`` atomically (:func:`mfbook.io.atomic_write`): a temporary file beside
    ``path``, renamed over it once complete.

    An interrupted save leaves the previous checkpoint intact; the temporary files of a save that
    was killed outright are removed by the next save. A ``path`` that is a symbolic link is
    refused (``OSError``).
    """
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"save_checkpoint needs the fields {missing}")
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "mfbook": mfbook.__version__}
    payload.update(state)
    clean_orphans(path.parent, path.name)
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, expect_config=None, expect_seed=None) -> dict:
    """Read a checkpoint with ``weights_only=True`` and check that it is one of ours.

    ``expect_config`` / ``expect_seed``: refuse a checkpoint of another run (to resume safely).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} is corrupted or not a checkpoint: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an mfbook checkpoint (no '{FORMAT}' format tag)")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format version {state.get('format_version')}, this library "
            f"reads version {FORMAT_VERSION}"
        )
    if not _compatible(str(state.get("mfbook")), mfbook.__version__):
        raise ValueError(
            f"checkpoint {path} was written by mfbook {state.get('mfbook')}, this is "
            f"mfbook {mfbook.__version__}; retrain or use the matching version"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks the fields {missing}")
    if expect_config is not None and state["config"] != expect_config:
        diff = sorted(
            k
            for k in set(expect_config) | set(state["config"])
            if state["config"].get(k) != expect_config.get(k)
        )
        raise ValueError(f"checkpoint {path} belongs to another configuration (differs in {diff})")
    if expect_seed is not None and state["seed"] != expect_seed:
        raise ValueError(f"checkpoint {path} has seed {state['seed']}, expected {expect_seed}")
    return state
