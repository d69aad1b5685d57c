"""Test sets under distribution shift, built from MNIST itself (chapter 10): nothing downloaded.
Rotated MNIST is one of the shifts of Ovadia et al., "Can you trust your model's uncertainty?",
NeurIPS 2019: accuracy should fall with the angle, and a good ensemble's predictive entropy rise.

* :func:`rotated`: every 28 x 28 image turned by an angle about its centre, counter-clockwise as
  the image is shown (row 0 at the top) for a positive angle, by bilinear interpolation, with
  black (0) where the turned image does not reach; 0 degrees returns the images unchanged and
  90 degrees is ``torch.rot90`` of each image exactly (up to float rounding);
* :func:`noisy`: additive Gaussian noise of standard deviation ``sigma`` per pixel, the result
  clipped to [0, 1], the range of the pixels (so the noise is not exactly Gaussian near 0 and 1).

The images are rows of 784 pixels in [0, 1] (:func:`mfbook.data.load_mnist`); bad input raises a
ValueError naming the argument.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mfbook import _checks

SIDE = 28
#: The angles of the comparison, in degrees.
ANGLES = (15, 30, 45, 60, 75, 90)
#: The noise levels of the comparison (standard deviation per pixel).
SIGMAS = (0.1, 0.2, 0.4, 0.8)


def _check_images(x) -> torch.Tensor:
    _checks.tensor("x", x, ndim=2)
    if x.shape[1] != SIDE * SIDE:
        raise ValueError(
            f"x must have shape (B, {SIDE * SIDE}), 28 x 28 images, got {tuple(x.shape)}"
        )
    lo, hi = _checks.value_range(x)
    if lo < 0 or hi > 1:
        raise ValueError(f"x must hold pixels in [0, 1], got values in [{lo:g}, {hi:g}]")
    return x


def _check_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def rotated(x, degrees) -> torch.Tensor:
    """The images of ``x`` (B, 784) turned by ``degrees`` counter-clockwise, shape (B, 784)."""
    x = _check_images(x)
    degrees = _check_number("degrees", degrees)
    if degrees == 0:
        return x.clone()
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    # grid_sample reads the output pixel at (u, v) (column, row; v downwards) from the input at
    # A (u, v): for a counter-clockwise turn on the screen that is the clockwise turn of (u, v)
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=x.dtype, device=x.device)
    img = x.reshape(-1, 1, SIDE, SIDE)
    grid = F.affine_grid(theta.expand(img.shape[0], 2, 3), list(img.shape), align_corners=False)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(x.shape).clamp_(0.0, 1.0)


def noisy(x, sigma, generator=None) -> torch.Tensor:
    """``x + sigma * eps``, eps ~ Normal(0, 1) per pixel from ``generator``, clipped to [0, 1]."""
    x = _check_images(x)
    sigma = _check_number("sigma", sigma)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x + sigma * eps).clamp_(0.0, 1.0)
