"""Checkpoints: atomic saves, safe loads (``weights_only=True``), clear errors (chapter 4).

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts, so that
``torch.load(..., weights_only=True)`` can read it without running any code from the file.

torch does not check the CRCs of its zip files, so a few flipped bits in a tensor would load
silently as other numbers. The file is therefore a small wrapper: the format tag and version,
the library version, and the state itself serialised to bytes (``payload``) with its
``sha256``, checked before the state is read. The state read is then validated: field types,
every model tensor finite, ``pi`` in [0, 1] and ``xi`` >= 0, the epoch within the config's
epochs and one history entry per epoch. Every problem is a :class:`CheckpointError` (a
``ValueError``) naming the file.
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import torch

import mfbook
from mfbook import _checks
from mfbook.io import atomic_write, clean_orphans

FORMAT = "mfbook-checkpoint"
#: 2: the state is stored as bytes with their sha256 (1: the state itself, unchecked).
FORMAT_VERSION = 2
REQUIRED = (
    "model",
    "config",
    "seed",
    "epoch",
    "history",
    "order_gen",
    "noise_gen",
    "device_type",
    "kernels",
)
#: The fields of the file around the state (returned by :func:`load_checkpoint` with it).
TAGS = ("format", "format_version", "mfbook")
#: The type of each field the training code relies on (checked on load).
TYPES = {
    "model": dict,
    "config": dict,
    "seed": int,
    "epoch": int,
    "history": dict,
    "order_gen": torch.Tensor,
    "noise_gen": torch.Tensor,
    "device_type": str,
    "kernels": bool,
}
#: Names in a model's state dict that end so, and the interval their values must lie in.
BOUNDS = {".pi": (0.0, 1.0), ".xi": (0.0, math.inf)}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or resumed (the message names the file)."""


def _compatible(a: str, b: str) -> bool:
    """Same major.minor library version."""
    return a.split(".")[:2] == b.split(".")[:2]


def _to_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_checkpoint(path: str | Path, **state) -> Path:
    """Write ``state`` atomically (:func:`mfbook.io.atomic_write`): a temporary file beside
    ``path``, renamed over it once complete; the state goes in as bytes with their sha256
    (fields named in :data:`TAGS`, as a loaded state has them, are the file's own).

    An interrupted save leaves the previous checkpoint intact; the temporary files of a save that
    was killed outright are removed by the next save. A ``path`` that is a symbolic link is
    refused (``OSError``).
    """
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"save_checkpoint needs the fields {missing}")
    path = Path(path)
    payload = _to_bytes({k: v for k, v in state.items() if k not in TAGS})  # those: wrapper's
    wrapper = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mfbook": mfbook.__version__,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": payload,
    }
    clean_orphans(path.parent, path.name)
    return atomic_write(path, lambda f: torch.save(wrapper, f))


def _load(source, path: Path):
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is corrupted or not a checkpoint: {err}") from err


def _unwrap(wrapper, path: Path) -> dict:
    """The state inside a checkpoint file's ``wrapper``, once its tags and sha256 agree, with
    those tags."""
    if not isinstance(wrapper, dict) or wrapper.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mfbook checkpoint (no '{FORMAT}' format tag)")
    if wrapper.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {wrapper.get('format_version')}, this library "
            f"reads version {FORMAT_VERSION}; start afresh (resume=False, or --no-resume)"
        )
    if not _compatible(str(wrapper.get("mfbook")), mfbook.__version__):
        raise CheckpointError(
            f"checkpoint {path} was written by mfbook {wrapper.get('mfbook')}, this is "
            f"mfbook {mfbook.__version__}; retrain or use the matching version"
        )
    payload = wrapper.get("payload")
    if not isinstance(payload, bytes) or not isinstance(wrapper.get("sha256"), str):
        raise CheckpointError(f"checkpoint {path} is corrupted: it lacks its payload or its sha256")
    if hashlib.sha256(payload).hexdigest() != wrapper["sha256"]:
        raise CheckpointError(
            f"checkpoint {path} is corrupted: its sha256 does not match its content"
        )
    state = _load(io.BytesIO(payload), path)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is corrupted: it holds a {type(state).__name__}")
    return {k: wrapper[k] for k in TAGS} | state


def _check_fields(state: dict, path: Path) -> None:
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the fields {missing}")
    for key, kind in TYPES.items():
        value = state[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(
                f"checkpoint {path}: {key} must be {kind.__name__}, got {type(value).__name__}"
            )


def _check_model(model: dict, path: Path) -> None:
    """Every tensor of the state dict ``model`` floating and finite, pi and xi in bounds."""
    for name, value in model.items():
        if not isinstance(value, torch.Tensor) or not torch.is_floating_point(value):
            raise CheckpointError(f"checkpoint {path}: model entry {name} is not a floating tensor")
        if value.numel() == 0:
            continue
        lo, hi = _checks.value_range(value)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise CheckpointError(f"checkpoint {path} holds NaN/inf in {name}")
        for suffix, (low, high) in BOUNDS.items():
            if name.endswith(suffix) and (lo < low or hi > high):
                raise CheckpointError(
                    f"checkpoint {path}: {name} must lie in [{low:g}, {high:g}], got values in "
                    f"[{lo:g}, {hi:g}]"
                )


def _check_progress(state: dict, path: Path) -> None:
    """0 <= epoch <= the config's epochs, and one history entry per epoch done."""
    epoch, epochs = state["epoch"], state["config"].get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise CheckpointError(f"checkpoint {path}: its config has no int epochs, got {epochs!r}")
    if not 0 <= epoch <= epochs:
        raise CheckpointError(f"checkpoint {path}: epoch {epoch} is outside [0, {epochs}]")
    for key, values in state["history"].items():
        if not isinstance(values, list):
            raise CheckpointError(f"checkpoint {path}: history[{key!r}] must be a list")
        if len(values) != epoch:
            raise CheckpointError(
                f"checkpoint {path}: history[{key!r}] has {len(values)} entries, its epoch is "
                f"{epoch}"
            )


def validate(state: dict, path: Path) -> dict:
    """Check the fields, the model and the progress of a loaded ``state``; return it."""
    _check_fields(state, path)
    _check_model(state["model"], path)
    _check_progress(state, path)
    return state


def load_checkpoint(path: str | Path, expect_config=None, expect_seed=None) -> dict:
    """Read a checkpoint with ``weights_only=True``, check its sha256 and validate it.

    ``expect_config`` / ``expect_seed``: refuse a checkpoint of another run (to resume safely).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = validate(_unwrap(_load(path, path), path), path)
    if expect_config is not None and state["config"] != expect_config:
        diff = sorted(
            k
            for k in set(expect_config) | set(state["config"])
            if state["config"].get(k) != expect_config.get(k)
        )
        raise CheckpointError(
            f"checkpoint {path} belongs to another configuration (differs in {diff})"
        )
    if expect_seed is not None and state["seed"] != expect_seed:
        raise CheckpointError(f"checkpoint {path} has seed {state['seed']}, expected {expect_seed}")
    return state
