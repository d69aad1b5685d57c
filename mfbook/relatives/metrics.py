"""The measurements of the comparison, one code for every method (chapter 10).

All take class probabilities ``probs`` (B, classes), rows summing to 1 (a method's
:meth:`~mfbook.relatives.base.Relative.predict`), and labels ``y`` (B,), and are computed in
float64:

* :func:`error`: the fraction of rows whose most probable class is not the label;
* :func:`nll`: the mean negative log-likelihood -ln p_y, in nats (p_y floored at
  :data:`PROB_FLOOR`, so that one confident mistake gives a large, finite value);
* :func:`reliability` and :func:`ece`: the expected calibration error with equal-width bins of
  the confidence max_k p_k (Naeini, Cooper & Hauskrecht, AAAI 2015; Guo, Pleiss, Sun &
  Weinberger, "On calibration of modern neural networks", ICML 2017),
  ECE = sum_b (n_b / B) |accuracy_b - confidence_b|, bin b = ((b-1)/n_bins, b/n_bins];
* :func:`predictive_entropy`: -sum_k p_k ln p_k, per example or its mean, in nats.

Bad input raises a ValueError that names the argument: mismatched shapes, probabilities outside
[0, 1] or rows that do not sum to 1 within :data:`SUM_TOLERANCE`, labels out of range.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from mfbook import _checks

#: How far a row of probabilities may sum from 1 (float32 softmax sums are within ~1e-6).
SUM_TOLERANCE = 1e-4
#: The smallest probability :func:`nll` takes the log of.
PROB_FLOOR = 1e-12
#: The number of confidence bins of :func:`ece` (Guo et al. 2017).
N_BINS = 15


def check_probs(probs, name: str = "probs") -> torch.Tensor:
    """``probs`` as float64, once it is a finite (B, classes) tensor of probabilities."""
    _checks.tensor(name, probs, ndim=2)
    p = probs.detach().double()
    lo, hi = _checks.value_range(p)
    if lo < 0 or hi > 1 + SUM_TOLERANCE:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:g}, {hi:g}]")
    worst = float((p.sum(1) - 1).abs().max())
    if worst > SUM_TOLERANCE:
        raise ValueError(
            f"{name} must have rows that sum to 1 (within {SUM_TOLERANCE:g}), got a row off by "
            f"{worst:.3g}: pass probabilities (a softmax), not logits"
        )
    return p


def check_labels(y, probs: torch.Tensor, name: str = "y") -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of class labels, got {type(y).__name__}")
    if y.dtype not in (torch.int64, torch.int32) or y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D integer tensor, got {y.dtype} {tuple(y.shape)}")
    if y.shape[0] != probs.shape[0]:
        raise ValueError(
            f"{name} and probs must have the same number of rows, got {y.shape[0]} labels and "
            f"probs of shape {tuple(probs.shape)}"
        )
    if int(y.min()) < 0 or int(y.max()) >= probs.shape[1]:
        raise ValueError(
            f"{name} must lie in [0, {probs.shape[1]}), got [{int(y.min())}, {int(y.max())}]"
        )
    return y.to(probs.device)


def error(probs, y) -> float:
    p = check_probs(probs)
    return float((p.argmax(1) != check_labels(y, p)).double().mean())


def nll(probs, y) -> float:
    p = check_probs(probs)
    py = p.gather(1, check_labels(y, p).long()[:, None]).squeeze(1)
    return float(-torch.log(py.clamp_min(PROB_FLOOR)).mean())


def predictive_entropy(probs, per_example: bool = False):
    """-sum_k p_k ln p_k (0 ln 0 = 0): a float64 tensor (B,), or its mean as a float."""
    p = check_probs(probs)
    h = (-(p * torch.log(p.clamp_min(PROB_FLOOR))).sum(1)).clamp_min(0.0)
    return h if per_example else float(h.mean())


class Reliability(NamedTuple):
    """The expected calibration error and, per bin, the reliability diagram's data: the bin's
    edges (n_bins + 1), mean confidence, accuracy and count (0, 0 and 0 for an empty bin)."""

    ece: float
    edges: list[float]
    confidence: list[float]
    accuracy: list[float]
    count: list[int]


def reliability(probs, y, n_bins: int = N_BINS) -> Reliability:
    p = check_probs(probs)
    y = check_labels(y, p)
    n_bins = _checks.positive_int("n_bins", n_bins)
    conf, pred = p.max(1)
    correct = (pred == y).double()
    # bin b holds conf in ((b-1)/n, b/n]: ceil(conf * n) - 1, and conf = 0 in the first bin
    b = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    count = torch.bincount(b, minlength=n_bins).double()
    sum_conf = torch.bincount(b, weights=conf, minlength=n_bins)
    sum_acc = torch.bincount(b, weights=correct, minlength=n_bins)
    denom = count.clamp_min(1)
    ece_value = float((sum_acc - sum_conf).abs().sum() / conf.numel())
    edges = [i / n_bins for i in range(n_bins + 1)]
    return Reliability(
        ece_value,
        edges,
        (sum_conf / denom).tolist(),
        (sum_acc / denom).tolist(),
        [int(c) for c in count.tolist()],
    )


def ece(probs, y, n_bins: int = N_BINS) -> float:
    """The expected calibration error with ``n_bins`` equal-width bins (:func:`reliability`)."""
    return reliability(probs, y, n_bins).ece
