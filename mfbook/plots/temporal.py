"""Figures of chapter 9 (temporal credit assignment): the multisensory task's training and
psychometric curves, and the training statistics of pi and xi."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mfbook.plots._style import SLAB_COLOUR, SPIKE_COLOUR, to_numpy

MODALITY_LABELS = {"v": "visual", "a": "auditory", "va": "both"}


def msi_training(losses: Sequence[Sequence[float]], curves, frequencies, boundary) -> Figure:
    """Left: the training loss of each run against the iteration (log scale). Right: the
    psychometric curves, P(choose "above") against the frequency, per modality (the mean over
    runs, with each run's points). ``curves``: (runs, 3 modalities, frequencies)."""
    c = to_numpy(curves)
    if c.ndim != 3 or c.shape[1] != len(MODALITY_LABELS) or c.shape[2] != len(frequencies):
        raise ValueError(f"curves must be (runs, 3, {len(frequencies)}), got {c.shape}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6), layout="constrained")
    for k, loss in enumerate(losses):
        left.plot(np.arange(1, len(loss) + 1), loss, lw=1, color=f"C{k}", label=f"seed {k}")
    left.set_yscale("log")
    left.set_xlabel("iteration (one batch of 30 trials)")
    left.set_ylabel("masked squared error")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize="small")
    f = to_numpy(frequencies)
    for j, label in enumerate(MODALITY_LABELS.values()):
        right.plot(f, 100 * c[:, j].mean(0), "-o", ms=4, color=f"C{j}", label=label)
        for run in c[:, j]:
            right.plot(f, 100 * run, ".", color=f"C{j}", alpha=0.35)
    right.axvline(boundary, color="grey", ls=":", lw=1, label=f"boundary {boundary:g} Hz")
    right.set_xlabel("stimulus frequency $f$ (Hz)")
    right.set_ylabel('choices "above" (%)')
    right.legend(fontsize="small")
    right.grid(True, alpha=0.3)
    return fig


def symmetry_breaking(
    iterations: Sequence[int], series: Mapping[str, Sequence[Sequence[float]]], level: float
) -> Figure:
    """The share of recurrent connections whose pi has left 0 and whose xi has reached 0,
    against the iteration: ``series`` maps a label that starts with "pi" or "xi" to (runs,
    logged iterations); a dotted line marks ``level``."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    x = to_numpy(iterations)
    for label, values in series.items():
        v = 100 * np.atleast_2d(to_numpy(values))
        colour = SPIKE_COLOUR if label.startswith("pi") else SLAB_COLOUR
        for k, run in enumerate(v):
            ax.plot(x, run, color=colour, lw=1.2, alpha=0.8, label=label if k == 0 else None)
    ax.axhline(100 * level, color="grey", ls=":", lw=1, label=f"{100 * level:g}% level")
    ax.set_xlabel("iteration")
    ax.set_ylabel("recurrent connections (%)")
    ax.set_xscale("symlog", linthresh=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig
