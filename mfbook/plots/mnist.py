"""Figures of chapter 4 (training the ensemble on MNIST): the data and the learning curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from mfbook.plots._style import to_numpy


def digit_grid(x, y, n_rows: int = 2, n_cols: int = 10) -> Figure:
    """The first ``n_rows * n_cols`` images of ``x`` (rows of 784 pixels), titled by label.

    Chapter 4.
    """
    images = to_numpy(x)[: n_rows * n_cols].reshape(-1, 28, 28)
    labels = to_numpy(y)[: n_rows * n_cols].astype(int)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(0.95 * n_cols, 1.15 * n_rows + 0.4), layout="constrained"
    )
    for j, ax in enumerate(np.ravel(axes)):
        ax.set_xticks([])
        ax.set_yticks([])
        if j < len(images):
            ax.imshow(images[j], cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"label {labels[j]}", fontsize="small")
    fig.supxlabel("pixel column (28 per row)", fontsize="small")
    fig.supylabel("pixel row", fontsize="small")
    return fig


def error_curves(
    curves: Mapping[str, Sequence], epochs=None, title: str | None = None, log: bool = True
) -> Figure:
    """Test error (in %) against the epoch: the mean over runs with a band of +-1 std (ch. 4).

    ``curves`` maps a legend label to an array of shape (runs, epochs) (or (epochs,) for one
    run; then no band is drawn).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for j, (label, values) in enumerate(curves.items()):
        v = 100 * np.atleast_2d(to_numpy(values))
        x = np.arange(1, v.shape[1] + 1) if epochs is None else to_numpy(epochs)
        mean = v.mean(0)
        n = v.shape[0]
        ax.plot(x, mean, color=f"C{j}", lw=1.5, label=label + (f" ({n} runs)" if n > 1 else ""))
        if n > 1:
            std = v.std(0)
            ax.fill_between(x, mean - std, mean + std, color=f"C{j}", alpha=0.25, lw=0)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        # label the minor ticks at 2, 3 and 5 times a power of ten only
        some = lambda v, _pos: f"{v:g}" if f"{v:.0e}"[0] in "235" else ""  # noqa: E731
        ax.yaxis.set_minor_formatter(FuncFormatter(some))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig
