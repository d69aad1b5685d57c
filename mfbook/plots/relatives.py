"""Figures of chapter 10 (gBP among its relatives): reliability diagrams, error and predictive
entropy under a shift of the test images, and the error against the fraction of weights
removed. Each takes the stored numbers of ``relatives`` keyed by method name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

#: How the chapter names the methods.
METHOD_LABELS = {
    "bp": "backprop",
    "mc_dropout": "MC dropout",
    "bbb": "Bayes by Backprop",
    "sparse_vd": "sparse VD",
    "gbp": "gBP",
}


def _label(name: str) -> str:
    return METHOD_LABELS.get(name, name)


def _colour(name: str) -> str:
    names = list(METHOD_LABELS)
    return f"C{names.index(name)}" if name in names else "grey"


def reliability_diagrams(bins: Mapping[str, Mapping]) -> Figure:
    """One panel per method: the accuracy of each confidence bin (bars, width of the bin) against
    the diagonal of perfect calibration, the mean confidence as a dot; ``bins[name]`` has the
    ``edges``, ``confidence``, ``accuracy``, ``count`` and ``ece`` of
    :func:`mfbook.relatives.metrics.reliability`."""
    if not bins:
        raise ValueError("bins must name at least one method")
    for name, b in bins.items():
        if len(b["edges"]) != len(b["count"]) + 1:
            raise ValueError(f"bins[{name!r}] needs one more edge than counts")
    fig, axes = plt.subplots(
        1, len(bins), figsize=(2.3 * len(bins) + 0.6, 2.9), layout="constrained", squeeze=False
    )
    for ax, (name, b) in zip(axes[0], bins.items(), strict=True):
        edges, count = np.asarray(b["edges"]), np.asarray(b["count"])
        full = count > 0
        left, width = edges[:-1][full], np.diff(edges)[full]
        acc, conf = np.asarray(b["accuracy"])[full], np.asarray(b["confidence"])[full]
        ax.bar(left, acc, width, align="edge", color=_colour(name), alpha=0.7, ec="white")
        ax.plot(conf, acc, ".", color="black", ms=4)
        ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{_label(name)}\nECE {100 * b['ece']:.2f}%", fontsize="medium")
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
    return fig


def shift_curves(
    levels: Sequence[float],
    errors: Mapping[str, Sequence[float]],
    entropies: Mapping[str, Sequence[float]],
    xlabel: str,
) -> Figure:
    """Left: the test error (%) of each method against the shift's level; right: the mean
    predictive entropy (nats), with ln 10, the entropy of a uniform guess, dotted."""
    if set(errors) != set(entropies) or not errors:
        raise ValueError("errors and entropies must name the same methods")
    x = np.asarray(levels, dtype=float)
    for name in errors:
        for values in (errors[name], entropies[name]):
            if len(values) != len(x):
                raise ValueError(f"{name!r} has {len(values)} values for {len(x)} levels")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4), layout="constrained")
    for name in errors:
        for ax, values, scale in ((left, errors[name], 100), (right, entropies[name], 1)):
            ax.plot(
                x, scale * np.asarray(values), "-o", ms=3, color=_colour(name), label=_label(name)
            )
    right.axhline(np.log(10), color="grey", ls=":", lw=1, label="uniform guess")
    left.set_ylabel("test error (%)")
    right.set_ylabel("mean predictive entropy (nats)")
    for ax in (left, right):
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    right.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def pruning_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]], removable: Mapping[str, float]
) -> Figure:
    """The test error of each method's deterministic network against the fraction of its weights
    removed by its own criterion (``curves[name]``: ``fractions``, ``errors``), against the
    fraction kept on a log axis; a cross marks the fraction ``removable[name]``."""
    if not curves:
        raise ValueError("curves must name at least one method")
    for name, c in curves.items():
        if len(c["fractions"]) != len(c["errors"]):
            n, m = len(c["fractions"]), len(c["errors"])
            raise ValueError(f"curves[{name!r}] has {n} fractions and {m} errors")
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for name, c in curves.items():
        f, e = np.asarray(c["fractions"], dtype=float), 100 * np.asarray(c["errors"])
        kept = np.clip(1 - f, 1e-4, 1)
        ax.plot(kept, e, "-", marker=".", color=_colour(name), label=_label(name))
        if name in removable:
            r = removable[name]
            ax.plot(max(1 - r, 1e-4), np.interp(r, f, e), "x", color=_colour(name), ms=9, mew=2)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("fraction of weights kept (log scale; removal by each method's criterion)")
    ax.set_ylabel("test error (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig
