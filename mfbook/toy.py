"""Two-dimensional toy data for chapter 3: generalized backprop on a problem you can look at.

* :func:`two_moons` and :func:`two_spirals`: balanced two-class point clouds in the plane, drawn
  from a seeded ``torch.Generator`` so that a seed fixes the data set;
* :func:`decision_grid`: a grid of the plane on which to evaluate a classifier; the figure of
  its decision regions is ``plots.plot_decision_regions``.

The networks of the book have no biases (chapters 2 and 3). A bias-free ReLU network is
positively homogeneous, f(c x) = c f(x) for c > 0, so on raw 2-D inputs its decision regions are
cones through the origin. With ``bias=True`` (the default) the generators append a constant input
of 1, so the inputs are (x_1, x_2, 1) and the first layer's connections from that constant input
act as biases; those connections are spike-and-slab variables like every other one (chapter 3).
"""

from __future__ import annotations

import math

import torch

from mfbook import _checks

__all__ = ["two_moons", "two_spirals", "decision_grid"]


def _check_common(n, noise, dtype) -> int:
    n = _checks.positive_int("n", n)
    if n < 2:
        raise ValueError(f"n must be at least 2 (one point per class), got {n}")
    if isinstance(noise, bool) or not isinstance(noise, int | float):
        raise TypeError(
            f"noise must be a number (a standard deviation), got {type(noise).__name__}"
        )
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(
            f"noise must be a finite number >= 0 (a standard deviation), got {noise!r}"
        )
    if dtype not in _checks.FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return n


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator)}")


def _finish(points, labels, noise, generator, dtype, bias):
    """Shuffle, add isotropic Gaussian noise, append the constant input; labels int64."""
    n = points.shape[0]
    points = points + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    perm = torch.randperm(n, generator=generator)
    x, y = points[perm], labels[perm]
    if bias:
        x = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)
    return x.to(dtype), y


def two_moons(
    n: int,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    bias: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles, centred on the origin (chapter 3).

    Class 0: (cos t, sin t) - (0.5, 0.25); class 1: (1 - cos t, 0.5 - sin t) - (0.5, 0.25), with
    t ~ Uniform[0, pi], plus Normal(0, noise^2) in each coordinate. Returns ``x`` of shape (n, 3)
    (or (n, 2) with ``bias=False``) and int64 labels ``y`` of shape (n,), shuffled; class 0 has
    ceil(n / 2) points, class 1 floor(n / 2).
    """
    n = _check_common(n, noise, dtype)
    _check_generator(generator)
    n1 = n // 2
    n0 = n - n1
    t = math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    upper = torch.stack([t[:n0].cos(), t[:n0].sin()], dim=1)
    lower = torch.stack([1 - t[n0:].cos(), 0.5 - t[n0:].sin()], dim=1)
    points = torch.cat([upper, lower]) - torch.tensor([0.5, 0.25], dtype=torch.float64)
    labels = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    return _finish(points, labels, noise, generator, dtype, bias)


def two_spirals(
    n: int,
    noise: float = 0.05,
    generator: torch.Generator | None = None,
    *,
    turns: float = 1.0,
    dtype: torch.dtype = torch.float32,
    bias: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved Archimedean spirals around the origin, radius up to 1 (chapter 3).

    A point at angle t (from 0 to 2 pi ``turns``) has radius r = t / (2 pi turns); class 1 is
    class 0 turned by pi. Same return convention as :func:`two_moons`.
    """
    n = _check_common(n, noise, dtype)
    _check_generator(generator)
    if isinstance(turns, bool) or not isinstance(turns, int | float):
        raise TypeError(f"turns must be a number, got {type(turns).__name__}")
    if not (0 < turns <= 10):
        raise ValueError(f"turns must lie in (0, 10], got {turns!r}")
    n1 = n // 2
    n0 = n - n1
    # sqrt of a uniform: points spread evenly along the arc length, not crowded at the centre
    s = torch.rand(n, generator=generator, dtype=torch.float64).sqrt()
    t = 2 * math.pi * turns * s
    phase = torch.cat([torch.zeros(n0, dtype=torch.float64), torch.full((n1,), math.pi)])
    points = torch.stack([s * (t + phase).cos(), s * (t + phase).sin()], dim=1)
    labels = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    return _finish(points, labels, noise, generator, dtype, bias)


def decision_grid(
    x: torch.Tensor, n_grid: int = 200, margin: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A regular grid that covers the points ``x`` (first two columns) plus ``margin``.

    Returns (xx, yy, points): xx and yy of shape (n_grid, n_grid) for plotting, and the grid as
    inputs of the same width and dtype as ``x`` (a constant third column of 1 when ``x`` has one).
    """
    _checks.tensor("x", x, ndim=2)
    if x.shape[1] not in (2, 3):
        raise ValueError(f"x must have shape (n, 2) or (n, 3), got {tuple(x.shape)}")
    n_grid = _checks.positive_int("n_grid", n_grid)
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    lo = x[:, :2].amin(dim=0) - margin
    hi = x[:, :2].amax(dim=0) + margin
    u = torch.linspace(float(lo[0]), float(hi[0]), n_grid, dtype=x.dtype)
    v = torch.linspace(float(lo[1]), float(hi[1]), n_grid, dtype=x.dtype)
    yy, xx = torch.meshgrid(v, u, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    if x.shape[1] == 3:
        points = torch.cat([points, torch.ones(points.shape[0], 1, dtype=x.dtype)], dim=1)
    return xx, yy, points
