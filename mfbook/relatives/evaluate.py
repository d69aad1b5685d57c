"""Every measurement of the comparison of chapter 10 on one trained model, by one code.

:func:`measure` gives the row of one model: on the test images, the error, NLL, ECE (15 bins)
and mean predictive entropy of its predictive distribution (the mean softmax of ``n_samples``
stochastic passes, :meth:`~mfbook.relatives.base.Relative.predict`; plain backprop has one
network); the error of its deterministic network; the fraction of weights removable at a cost of
at most 0.1 points of that network's error by the method's own scores
(:func:`mfbook.relatives.sparsity.sparsity`); and the error and mean entropy on the shifted test
sets of :func:`shifted_sets` (the first ``n_shift`` test images rotated and with noise). The
curves (the reliability diagram's bins, the errors along the pruning) come beside it.
"""

from __future__ import annotations

import torch

from mfbook.relatives import metrics, shift
from mfbook.relatives import sparsity as sp
from mfbook.relatives.base import Relative

#: The cost of a removal that still counts as free: 0.1 percentage points of error.
TOLERANCE = 0.001


def shifted_sets(x, n_shift: int, seed: int = 0) -> dict[str, list[tuple[float, torch.Tensor]]]:
    """{"rotation": [(degrees, images)], "noise": [(sigma, images)]} of the first ``n_shift``
    images, the unshifted images first (level 0); one noise draw for every method."""
    xs = x[:n_shift]
    gen = torch.Generator(device=x.device).manual_seed(seed)
    return {
        "rotation": [(0.0, xs)] + [(float(a), shift.rotated(xs, a)) for a in shift.ANGLES],
        "noise": [(0.0, xs)] + [(float(s), shift.noisy(xs, s, gen)) for s in shift.SIGMAS],
    }


def _deterministic_error(model: Relative, x, y, keep=None) -> float:
    net = model if keep is None else model.pruned(keep)
    return metrics.error(net.predict(x, 0), y)


def measure(model: Relative, test, shifts, n_samples: int, seed: int = 0) -> tuple[dict, dict]:
    """(row, curves) of ``model`` on ``test = (x, y)`` and the ``shifts`` of
    :func:`shifted_sets` (whose labels are the first rows of y)."""
    x, y = test
    gen = torch.Generator(device=x.device).manual_seed(seed)
    model.eval()
    probs = model.predict(x, n_samples, gen)
    rel = metrics.reliability(probs, y)
    base = _deterministic_error(model, x, y)
    removal = sp.sparsity(
        model.prune_scores(), lambda keep: _deterministic_error(model, x, y, keep), base, TOLERANCE
    )
    row = {
        "test_error": metrics.error(probs, y),
        "nll": metrics.nll(probs, y),
        "ece": rel.ece,
        "entropy": metrics.predictive_entropy(probs),
        "test_error_net": base,
        "sparsity": removal.fraction,
    }
    for kind, sets in shifts.items():
        ys = y[: sets[0][1].shape[0]]
        p = [model.predict(xs, n_samples, gen) for _, xs in sets]
        row[f"{kind}_levels"] = [level for level, _ in sets]
        row[f"{kind}_error"] = [metrics.error(q, ys) for q in p]
        row[f"{kind}_entropy"] = [metrics.predictive_entropy(q) for q in p]
    curves = {"reliability": rel._asdict(), "pruning": removal._asdict()}
    return row, curves
