"""Input checks at the public boundary (one place, one message style).

Every public function of the package validates what a reader or a student may pass in, and raises
a ``ValueError`` or ``TypeError`` that names the argument, what was expected and what was given.
Inside the package the data is trusted.
"""

from __future__ import annotations

import math
import re

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def tensor(name: str, value, *, ndim: int | None = None, floating: bool = True) -> torch.Tensor:
    """Check that ``value`` is a finite tensor of the expected rank and (floating) dtype."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D tensor, got shape {tuple(value.shape)} ({value.ndim}-D)"
        )
    if floating and value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {value.dtype}")
    if value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    if floating and not all(map(math.isfinite, value_range(value))):
        raise ValueError(f"{name} contains NaN or inf")
    return value


def value_range(value: torch.Tensor) -> tuple[float, float]:
    """(min, max) of a non-empty tensor in one pass; NaN if it holds a NaN (one host
    synchronisation; much cheaper than ``torch.isfinite(value).all()`` on the CPU)."""
    lo, hi = torch.aminmax(value.detach())
    return float(lo), float(hi)


def same_shape(names: tuple[str, ...], values: tuple[torch.Tensor, ...]) -> None:
    """Check that tensors that describe the same connections have the same shape."""
    shapes = [tuple(v.shape) for v in values]
    if len(set(shapes)) != 1:
        listing = ", ".join(f"{n} {s}" for n, s in zip(names, shapes, strict=True))
        raise ValueError(f"{', '.join(names)} must have the same shape, got {listing}")


def same_dtype_device(names: tuple[str, ...], values: tuple[torch.Tensor, ...]) -> None:
    """Check that tensors meet in one computation: same dtype and device."""
    kinds = {(v.dtype, v.device) for v in values}
    if len(kinds) != 1:
        listing = ", ".join(
            f"{n} {v.dtype} on {v.device}" for n, v in zip(names, values, strict=True)
        )
        raise TypeError(f"{', '.join(names)} must share dtype and device, got {listing}")


def spike_slab_params(
    pi: torch.Tensor, m: torch.Tensor, xi: torch.Tensor, *, ndim=None, prefix: str = ""
) -> None:
    """Check a spike-and-slab parameter triple: shapes agree, pi in [0, 1], xi >= 0, finite.

    ``prefix`` goes before each parameter's name in the messages (e.g. ``"layers[1]."``)."""
    names = tuple(f"{prefix}{n}" for n in ("pi", "m", "xi"))
    for name, value in zip(names, (pi, m, xi), strict=True):
        tensor(name, value, ndim=ndim)
    same_shape(names, (pi, m, xi))
    same_dtype_device(names, (pi, m, xi))
    lo, hi = value_range(pi)
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{names[0]} must lie in [0, 1] (a probability), got values in [{lo:g}, {hi:g}]"
        )
    lo = value_range(xi)[0]
    if lo < 0:
        raise ValueError(f"{names[2]} must be >= 0 (a variance), got a minimum of {lo:g}")


def positive_int(name: str, value) -> int:
    """Check a positive integer (sizes, counts)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def choice(name: str, value, options: tuple[str, ...]) -> str:
    """Check a named option (mode, split, preset, ...)."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def spike_slab_scalars(pi, m, xi) -> tuple[float, float, float]:
    """Validate the scalar spike-and-slab parameters a reader may type into a plot or widget."""
    values = []
    for name, value in (("pi", pi), ("m", m), ("xi", xi)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        values.append(float(value))
    pi, m, xi = values
    if not 0.0 <= pi <= 1.0:
        raise ValueError(f"pi must lie in [0, 1] (probability the connection is absent), got {pi}")
    if xi < 0.0:
        raise ValueError(f"xi must be >= 0 (the slab variance), got {xi}")
    return pi, m, xi


def file_name(name: str, value) -> str:
    """Check that ``value`` names a file inside its folder: letters, digits, ``_ . -``, no path
    separator and no ``..`` (a stored result's labels never reach outside its folder)."""
    if not isinstance(value, str) or not _PLAIN_NAME.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{name} must be a plain file name (letters, digits, '_', '.', '-'), got {value!r}"
        )
    return value
