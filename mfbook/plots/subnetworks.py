"""Figures of chapter 6 (an ensemble of sub-networks) and chapter 7 (connections and limits).

Thin like the rest: every number is computed in the chapter or in the science modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from mfbook.plots._style import THEORY_COLOUR, to_numpy


def _check_nonempty(name: str, mapping) -> None:
    if not isinstance(mapping, Mapping) or len(mapping) == 0:
        raise ValueError(f"{name} must be a non-empty mapping of label -> values")


def subnetwork_error_histogram(
    errors: Mapping[str, Sequence[float]],
    references: Mapping[str, float] | None = None,
    bins: int = 20,
) -> Figure:
    """Histograms of the test errors of sampled sub-networks, in percent (chapter 6).

    ``errors`` maps a label (e.g. "stored, 100 networks") to error rates in [0, 1]; each set is
    drawn as a density, so sets of different sizes can be compared. ``references`` maps a label
    to one error rate drawn as a vertical line (e.g. the mean network).
    """
    _check_nonempty("errors", errors)
    values = {k: 100 * to_numpy(v).ravel() for k, v in errors.items()}
    refs = {k: 100 * float(v) for k, v in (references or {}).items()}
    every = np.concatenate([*values.values(), np.array(list(refs.values()))])
    pad = max(0.05, 0.05 * (every.max() - every.min()))
    edges = np.linspace(every.min() - pad, every.max() + pad, bins + 1)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for j, (label, v) in enumerate(values.items()):
        ax.hist(
            v,
            bins=edges,
            density=True,
            histtype="stepfilled" if j == 0 else "step",
            alpha=0.4 if j == 0 else 1.0,
            lw=1.5,
            color=f"C{j}",
            label=f"{label} (n = {v.size})",
        )
    for j, (label, v) in enumerate(refs.items()):
        ax.axvline(v, color=f"C{len(values) + j}", ls=("--", ":", "-.")[j % 3], lw=1.8, label=label)
    ax.set_xlabel("test error (%)")
    ax.set_ylabel("density (1 / percentage point)")
    ax.legend(fontsize="small")
    ax.set_title("test errors of sampled sub-networks", fontsize="medium")
    return fig


def ensemble_error_vs_k(
    K,
    curves: Mapping[str, tuple],
    references: Mapping[str, float] | None = None,
) -> Figure:
    """Test error of predictions averaged over K members against K, log2 axis (chapter 6).

    ``curves`` maps a label to ``(mean, spread)`` arrays over ``K`` (error rates in [0, 1]; the
    spread, e.g. a standard deviation over repetitions, is drawn as error bars, or pass None).
    ``references`` maps a label to one error rate drawn as a horizontal line.
    """
    _check_nonempty("curves", curves)
    k = to_numpy(K)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for j, (label, (mean, spread)) in enumerate(curves.items()):
        yerr = None if spread is None else 100 * to_numpy(spread)
        ax.errorbar(
            k,
            100 * to_numpy(mean),
            yerr=yerr,
            fmt="o-",
            ms=4,
            capsize=3,
            color=f"C{j}",
            label=label,
        )
    for j, (label, v) in enumerate((references or {}).items()):
        ax.axhline(
            100 * float(v), color=f"C{len(curves) + j}", ls=("--", ":", "-.")[j % 3], label=label
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(k, [str(int(v)) for v in k])
    ax.set_xlabel(r"number of averaged members $K$")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize="small")
    ax.set_title("averaging predicted probabilities over $K$ members", fontsize="medium")
    return fig


def entropy_profiles(
    profiles: Mapping[str, Sequence[float]],
    errors: Mapping[str, Sequence[float]] | None = None,
    ax=None,
    title: str = "entropy profile across layers",
) -> Figure:
    """Mean per-connection entropy of every layer, one line per label (chapter 6); with
    ``errors`` (same labels), error bars of that size (e.g. the standard deviation over seeds).
    ``ax``: draw into this axes (a panel of a larger figure) instead of a new figure."""
    _check_nonempty("profiles", profiles)
    if errors is not None and set(errors) != set(profiles):
        raise ValueError(f"errors must have the labels of profiles, got {sorted(errors)}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    else:
        fig = ax.figure
    n_max = 0
    for j, (label, s) in enumerate(profiles.items()):
        s = to_numpy(s).ravel()
        n_max = max(n_max, s.size)
        x = np.arange(1, s.size + 1)
        err = None if errors is None else to_numpy(errors[label]).ravel()
        ax.errorbar(x, s, yerr=err, fmt="o-", color=f"C{j}", label=label, capsize=3)
    ax.set_xticks(np.arange(1, n_max + 1))
    ax.set_xlabel(r"weight layer $l$ (1 = input side)")
    ax.set_ylabel(r"mean entropy per connection $\bar S_l$ (nats)")
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    return fig


def _ecdf(values):
    v = np.sort(to_numpy(values).ravel())
    return v, np.arange(1, v.size + 1) / v.size


def parameter_distributions(pi: Sequence[torch.Tensor], xi: Sequence[torch.Tensor]) -> Figure:
    """Empirical CDFs of pi (left) and of Xi > 0 on a log axis (right), one line per layer (ch. 7).

    Point masses show as jumps: the height at pi = 0 is the fraction with pi == 0, the jump at
    pi = 1 the fraction with pi == 1. Xi == 0 cannot sit on a log axis: the right curve starts at
    the fraction of exact zeros, given in the legend.
    """
    if len(pi) == 0 or len(pi) != len(xi):
        raise ValueError(f"pi and xi need one tensor per layer, got {len(pi)} and {len(xi)}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8), layout="constrained")
    for l, (p, x) in enumerate(zip(pi, xi, strict=True)):
        v, f = _ecdf(p)
        left.step(np.r_[0.0, v, 1.0], np.r_[0.0, f, 1.0], where="post", color=f"C{l}")
        x = to_numpy(x).ravel()
        zero = float(np.mean(x == 0))
        pos = np.sort(x[x > 0])
        label = rf"layer {l + 1} ($\Xi=0$: {100 * zero:.0f}%)"
        if pos.size:
            f = zero + np.arange(1, pos.size + 1) / x.size
            right.step(pos, f, where="post", color=f"C{l}", label=label)
            right.set_xscale("log")
        else:
            right.plot([], [], color=f"C{l}", label=label)
    left.set_xlabel(r"probability of absence $\pi$")
    left.set_ylabel(r"fraction of connections $\leq$ value")
    left.set_xlim(-0.02, 1.02)
    left.set_ylim(0, 1.02)
    left.set_title(r"$\pi$: jumps at 0 and 1 are exact corners", fontsize="medium")
    right.set_xlabel(r"slab variance $\Xi$ (only $\Xi > 0$)")
    right.set_ylabel(r"fraction of connections $\leq$ value")
    right.set_ylim(0, 1.02)
    right.set_title(r"$\Xi$ (log axis)", fontsize="medium")
    right.legend(fontsize="small", loc="upper left")
    return fig


def correlation_check(
    predicted, measured: Mapping[str, Sequence[float]], xlabel: str | None = None
) -> Figure:
    """Measured correlations against predicted ones, with the diagonal (chapter 7).

    ``measured`` maps a label (e.g. "sampled networks", "mean-field forward") to correlations at
    the ``predicted`` values.
    """
    _check_nonempty("measured", measured)
    p = to_numpy(predicted).ravel()
    fig, ax = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
    lo = min(-0.1, p.min(), *(to_numpy(v).min() for v in measured.values()))
    hi = max(1.0, p.max())
    ax.plot([lo, hi], [lo, hi], color=THEORY_COLOUR, lw=1, label="measured = predicted")
    markers = "os^v"
    for j, (label, v) in enumerate(measured.items()):
        v = to_numpy(v).ravel()
        if v.shape != p.shape:
            raise ValueError(f"measured[{label!r}] has {v.size} values, predicted {p.size}")
        ax.plot(p, v, markers[j % 4], ms=4, alpha=0.7, color=f"C{j}", label=label)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel(xlabel or r"predicted correlation $r_{\mathrm{pred}}$")
    ax.set_ylabel(r"measured correlation $r$")
    ax.legend(fontsize="small")
    return fig
