"""Figures of chapter 5 (credit assignment): the trained parameters, the three kinds of
connection (VIP, UIP, variable) and the perturbation experiment.

The names of the kinds of perturbation are analysis vocabulary: ``analysis.KIND_LABELS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mfbook.analysis import KIND_LABELS
from mfbook.plots._style import SLAB_COLOUR, SPIKE_COLOUR, to_numpy

#: Colours of the three kinds of connection (chapter 5) and of the perturbation curves.
KIND_COLOURS = {"vip": "tab:red", "random": "tab:blue", "uip": "tab:green"}
#: The connections each kind of perturbation acts on (the last word of its label).
KIND_CONNECTIONS = {"vip": "VIP", "random": "variable", "uip": "UIP"}
CATEGORY_COLOURS = {
    "variable": "0.82",
    "VIP": "tab:red",
    "UIP": "tab:blue",
    "never active": "white",
}


def parameter_histograms(layers: Sequence, bins: int = 50) -> Figure:
    """Histograms of pi, m and Xi of every layer, log counts (chapter 5).

    ``layers`` is a list of (pi, m, xi) tensors, e.g. ``model.params()``. Each pi and Xi panel
    states how many values are exactly 0 (and, for pi, exactly 1): the spikes the projection makes.
    """
    n = len(layers)
    fig, axes = plt.subplots(
        n, 3, figsize=(9.6, 2.4 * n + 0.3), layout="constrained", squeeze=False
    )
    box = {"facecolor": "white", "alpha": 0.85, "lw": 0}
    for l, (pi, m, xi) in enumerate(layers):
        pi, m, xi = (to_numpy(t).ravel() for t in (pi, m, xi))
        for k, (ax, values, symbol) in enumerate(
            zip(axes[l], (pi, m, xi), (r"\pi", "m", r"\Xi"), strict=True)
        ):
            lo, hi = (0.0, 1.0) if k == 0 else (float(values.min()), float(values.max()))
            if hi <= lo:
                hi = lo + 1.0
            ax.hist(values, bins=bins, range=(lo, hi), color=SLAB_COLOUR, alpha=0.7)
            ax.set_yscale("log")
            ax.set_xlabel(rf"${symbol}$ (layer {l + 1})")
            if k == 0:
                ax.set_ylabel("connections")
            notes = []
            if k != 1:
                notes.append(f"${symbol} = 0$: {100 * np.mean(values == 0):.1f}%")
            if k == 0:
                notes.append(f"${symbol} = 1$: {100 * np.mean(values == 1):.1f}%")
            if notes:
                ax.text(
                    0.97,
                    0.95,
                    "\n".join(notes),
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                    fontsize="small",
                    bbox=box,
                )
    return fig


def pixel_maps(maps: Mapping[str, Sequence], mask=None, colorbar_labels=None) -> Figure:
    """One 28 x 28 image per entry of ``maps`` (title -> 784 values), with a colour bar (ch. 5).

    ``mask`` (784 booleans) marks pixels outlined in every panel, e.g. those never active in the
    training set; ``colorbar_labels`` optionally names the quantity of each panel.
    """
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 3.2), layout="constrained", squeeze=False)
    for j, (ax, (title, values)) in enumerate(zip(axes[0], maps.items(), strict=True)):
        img = to_numpy(values).reshape(28, 28)
        shown = ax.imshow(img, cmap="viridis", interpolation="nearest")
        if mask is not None:
            ax.contour(to_numpy(mask).reshape(28, 28), levels=[0.5], colors="white", linewidths=0.8)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("pixel column")
        if j == 0:
            ax.set_ylabel("pixel row")
        bar = fig.colorbar(shown, ax=ax, shrink=0.8)
        if colorbar_labels is not None:
            bar.set_label(colorbar_labels[j], fontsize="small")
    return fig


def unit_counts(counts, highlight=None, ylabel: str = "VIP connections", label: str = "") -> Figure:
    """A bar per hidden unit (e.g. its number of VIP connections); ``highlight`` (booleans per
    unit) draws the marked units in red, with ``label`` in the legend (chapter 5)."""
    c = to_numpy(counts)
    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    colours = np.array([SLAB_COLOUR] * len(c), dtype=object)
    if highlight is not None:
        colours[to_numpy(highlight).astype(bool)] = SPIKE_COLOUR
    ax.bar(np.arange(len(c)), c, color=list(colours), width=0.85)
    if highlight is not None and label:
        ax.bar([0], [0], color=SPIKE_COLOUR, label=label)
        ax.legend(fontsize="small")
    ax.set_xlabel("hidden unit $i$")
    ax.set_ylabel(ylabel)
    return fig


def receptive_fields(m, vip, uip, units: Sequence[int], inactive=None, titles=None) -> Figure:
    """Incoming connections of first-layer units as 28 x 28 images (chapter 5).

    Top row: the slab mean m of each unit's 784 connections (diverging colours, 0 is white).
    Bottom row: the kind of each connection, VIP, UIP or variable; pixels marked in ``inactive``
    (never active in the training data) are drawn white. ``m``, ``vip``, ``uip`` have shape
    (N_hidden, 784).
    """
    m, vip, uip = to_numpy(m), to_numpy(vip).astype(bool), to_numpy(uip).astype(bool)
    n = len(units)
    fig, axes = plt.subplots(
        2, n, figsize=(2.3 * n + 0.8, 5.2), layout="constrained", squeeze=False
    )
    names = list(CATEGORY_COLOURS)
    cmap = ListedColormap([CATEGORY_COLOURS[k] for k in names])
    for j, i in enumerate(units):
        lim = float(np.abs(m[i]).max()) or 1.0
        shown = axes[0, j].imshow(
            m[i].reshape(28, 28), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest"
        )
        fig.colorbar(shown, ax=axes[0, j], shrink=0.7).set_label("$m$", fontsize="small")
        code = np.zeros(784)
        code[vip[i]] = names.index("VIP")
        code[uip[i]] = names.index("UIP")
        if inactive is not None:
            code[to_numpy(inactive).astype(bool)] = names.index("never active")
        axes[1, j].imshow(
            code.reshape(28, 28),
            cmap=cmap,
            vmin=-0.5,
            vmax=len(names) - 0.5,
            interpolation="nearest",
        )
        axes[0, j].set_title(titles[j] if titles is not None else f"unit {i}", fontsize="medium")
        axes[1, j].set_xlabel("pixel column")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("slab mean $m$ (pixel row)")
    axes[1, 0].set_ylabel("kind of connection (pixel row)")
    handles = [Patch(facecolor=CATEGORY_COLOURS[k], edgecolor="0.3", label=k) for k in names]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(names), fontsize="small")
    return fig


def perturbation_panels(curves: Sequence[Mapping], titles: Sequence[str] | None = None) -> Figure:
    """The perturbation experiment (chapter 5): test error (%) against the fraction f, per layer.

    ``curves`` holds one dict per panel as returned by ``analysis.perturbation_curves``
    (keys "fraction", "error_vip", "error_random", "error_uip", "count_*", and "sem_*", drawn
    as error bars of one standard error over the sampled networks where present). The error
    axis starts at 0, so that a rise of a few tenths of a point looks as small as it is.
    """
    n = len(curves)
    fig, axes = plt.subplots(
        1, n, figsize=(3.6 * n + 0.4, 3.6), layout="constrained", squeeze=False, sharey=True
    )
    for j, (ax, c) in enumerate(zip(axes[0], curves, strict=True)):
        f = to_numpy(c["fraction"])
        for kind, label in KIND_LABELS.items():
            total = c[f"count_{kind}"][-1]
            sem = c.get(f"sem_{kind}")
            ax.errorbar(
                f,
                100 * to_numpy(c[f"error_{kind}"]),
                yerr=None if sem is None else 100 * to_numpy(sem),
                fmt="o-",
                ms=4,
                capsize=2,
                color=KIND_COLOURS[kind],
                label=f"{label} (up to {total})",
            )
        ax.set_xlabel("fraction $f$")
        if j == 0:
            ax.set_ylabel("test error of sampled networks (%)")
        ax.set_title(titles[j] if titles is not None else f"layer {j + 1}", fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="x-small", loc="lower left")
    return fig


def error_strip(errors: Mapping[str, Sequence]) -> Figure:
    """Test errors (%) of sampled sub-networks, one row of dots per label, means as bars (ch. 5)."""
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.7 * len(errors)), layout="constrained")
    for j, values in enumerate(errors.values()):
        v = 100 * to_numpy(values).ravel()
        ax.plot(v, np.full(v.shape, j), "o", ms=5, alpha=0.6, color=f"C{j}")
        ax.plot([v.mean()] * 2, [j - 0.3, j + 0.3], color=f"C{j}", lw=2)
    ax.set_yticks(range(len(errors)), list(errors))
    ax.set_ylim(-0.6, len(errors) - 0.4)
    ax.set_xlabel("test error of one sampled sub-network (%)")
    ax.set_ylabel("network")
    ax.grid(True, axis="x", alpha=0.3)
    return fig
