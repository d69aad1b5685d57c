"""How many weights a trained network can lose (chapter 10): the removable fraction.

A method's criterion gives every weight a score (:meth:`~mfbook.relatives.base.Relative.
prune_scores`: |w| for backprop and dropout, |mu|/sigma for Bayes by Backprop, -ln alpha for
sparse variational dropout, 1 - pi for gBP; magnitude pruning as in Han, Pool, Tran & Dally,
NeurIPS 2015). :func:`keep_masks` removes the weights with the
lowest scores, ranked over all layers together (equal scores in the order of the weights).
:func:`sparsity` finds the largest fraction f whose removal costs at most ``tolerance`` in error
(0.001: 0.1 percentage points) over ``base_error``, the error of the whole network:

1. a grid: the fractions of ``grid`` in increasing order are evaluated until the first whose
   error exceeds base_error + tolerance (the later ones are not evaluated: the answer is the
   largest fraction BELOW the first failure, not any passing fraction after it);
2. a bisection: ``refine`` halvings of the interval between the last passing and the first
   failing grid fraction, which assumes the error does not fall again inside it.

The result holds every fraction evaluated and its error, the data of a pruning curve.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from mfbook import _checks

#: Finer towards 1, where the sparse methods live (Molchanov et al. keep ~1-2% of LeNet-300-100).
GRID = (
    0.0,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.97,
    0.98,
    0.99,
    0.995,
    0.998,
    0.999,
    1.0,
)


class Sparsity(NamedTuple):
    fraction: float  # the largest removable fraction found
    fractions: list[float]  # every fraction evaluated, in increasing order
    errors: list[float]  # the error at each


def _check_scores(scores) -> list[torch.Tensor]:
    if not isinstance(scores, list | tuple) or not scores:
        raise ValueError(f"scores must be a non-empty list of tensors, got {type(scores).__name__}")
    return [_checks.tensor(f"scores[{i}]", s) for i, s in enumerate(scores)]


def keep_masks(scores, fraction: float) -> list[torch.Tensor]:
    """Bool masks shaped like ``scores``, False for the round(fraction * n) lowest-scored of all
    n weights (ranked over all tensors together)."""
    scores = _check_scores(scores)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not 0 <= fraction <= 1
    ):
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
    flat = torch.cat([s.detach().double().reshape(-1).cpu() for s in scores])
    order = torch.argsort(flat, stable=True)
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[: round(fraction * flat.numel())]] = False
    masks, start = [], 0
    for s in scores:
        masks.append(keep[start : start + s.numel()].reshape(s.shape).to(s.device))
        start += s.numel()
    return masks


def sparsity(
    scores,
    evaluate: Callable[[list[torch.Tensor]], float],
    base_error: float,
    tolerance: float = 0.001,
    grid=GRID,
    refine: int = 4,
) -> Sparsity:
    """The largest removable fraction by ``scores``; ``evaluate(keep)`` returns the error of the
    network without the weights where the masks ``keep`` (:func:`keep_masks`) are False."""
    scores = _check_scores(scores)
    if not callable(evaluate):
        raise TypeError(f"evaluate must be callable, got {type(evaluate).__name__}")
    for name, v in (("base_error", base_error), ("tolerance", tolerance)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
            raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
    grid = [float(f) for f in grid]
    if not grid or any(not 0 <= f <= 1 for f in grid) or grid != sorted(set(grid)):
        raise ValueError(f"grid must be increasing fractions in [0, 1], got {grid}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be a non-negative int, got {refine!r}")
    limit = base_error + tolerance
    seen: dict[float, float] = {}

    def passes(f: float) -> bool:
        err = float(evaluate(keep_masks(scores, f)))
        if not math.isfinite(err):
            raise ValueError(f"evaluate returned {err!r} at fraction {f}")
        seen[f] = err
        return err <= limit

    good, bad = None, None
    for f in grid:
        if not passes(f):
            bad = f
            break
        good = f
    if good is not None and bad is not None:
        for _ in range(refine):
            mid = (good + bad) / 2
            good, bad = (mid, bad) if passes(mid) else (good, mid)
    fractions = sorted(seen)
    return Sparsity(good or 0.0, fractions, [seen[f] for f in fractions])
