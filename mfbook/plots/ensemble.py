"""Figures of chapters 1-3: one connection, the sampled ensemble and gBP on the toy data.

* chapter 1 (the spike-and-slab ensemble): :func:`spike_slab_distribution`,
  :func:`sparsity_patterns`, :func:`entropy_vs_pi`;
* chapter 2 (the central-limit moment equations): :func:`preactivation_histograms`,
  :func:`ks_vs_fan_in`;
* chapter 3 (generalized backprop on the 2-D toy data of :mod:`mfbook.toy`):
  :func:`plot_decision_regions`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from mfbook import _checks
from mfbook.plots._style import SLAB_COLOUR, SPIKE_COLOUR, THEORY_COLOUR, to_numpy
from mfbook.toy import decision_grid


def _gaussian(grid, G, Delta):
    """The density of N(G, Delta^2) (Delta a standard deviation) on ``grid``."""
    return np.exp(-((grid - G) ** 2) / (2 * Delta**2)) / (math.sqrt(2 * math.pi) * Delta)


def spike_slab_distribution(
    pi: float, m: float, xi: float, samples: torch.Tensor | None = None
) -> Figure:
    """P(w) = pi delta(w) + (1 - pi) N(w | m, xi) of one connection (chapter 1, eq. 1.1).

    The slab is drawn as a density (left axis, it integrates to 1 - pi); the spike at w = 0 is a
    point mass, drawn as a bar of height pi on the right axis (probability). With ``samples``
    (a 1-D tensor of draws), the histogram of the non-zero draws (scaled so that its area is the
    fraction of non-zero draws) and the fraction of exact zeros are added.
    """
    pi, m, xi = _checks.spike_slab_scalars(pi, m, xi)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    spread = math.sqrt(xi) if xi > 0 else 0.1
    lo, hi = min(0.0, m) - 4 * spread, max(0.0, m) + 4 * spread
    if samples is not None:
        w = to_numpy(samples).ravel()
        nonzero = w[w != 0]
        if nonzero.size:
            lo, hi = min(lo, np.quantile(nonzero, 0.001)), max(hi, np.quantile(nonzero, 0.999))
            counts, edges = np.histogram(nonzero, bins=60, range=(lo, hi))
            density = counts / (w.size * np.diff(edges))
            ax.stairs(density, edges, fill=True, color=SLAB_COLOUR, alpha=0.35, label="samples")
    grid = np.linspace(lo, hi, 400)
    if xi > 0:
        slab = (1 - pi) * _gaussian(grid, m, math.sqrt(xi))
        ax.plot(grid, slab, color=SLAB_COLOUR, lw=2, label=r"slab $(1-\pi)\,\mathcal{N}(w|m,\Xi)$")
    else:
        ax.axvline(m, color=SLAB_COLOUR, lw=2, label=r"slab: point mass $1-\pi$ at $w=m$")
    ax.set_xlim(lo, hi)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(r"weight $w$")
    ax.set_ylabel(r"slab density $p(w)$ (1/unit of $w$)")
    right = ax.twinx()
    width = 0.02 * (hi - lo)
    right.bar([0.0], [pi], width=width, color=SPIKE_COLOUR, alpha=0.8, label=r"spike mass $\pi$")
    if samples is not None:
        frac = float(np.mean(w == 0))
        right.plot([0.0], [frac], "o", color=THEORY_COLOUR, ms=5, label="fraction of exact 0s")
    right.set_ylim(0, 1.05)
    right.set_ylabel(r"spike probability $P(w=0)$", color=SPIKE_COLOUR)
    handles = [h for a in (ax, right) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.9)
    ax.set_title(rf"$\pi={pi:.2f}$, $m={m:.2f}$, $\Xi={xi:.3f}$")
    return fig


def sparsity_patterns(
    weights: Sequence[torch.Tensor], titles: Sequence[str] | None = None
) -> Figure:
    """Stacked images of sampled weight matrices: present (w != 0) dark, absent white.

    ``weights`` are (N_out, N_in) tensors, e.g. several draws of :meth:`SpikeSlab.sample`
    (chapter 1).
    """
    weights = list(weights)
    n = len(weights)
    fig, axes = plt.subplots(
        n, 1, figsize=(7.5, 0.4 + 2.3 * n), layout="constrained", squeeze=False, sharex=True
    )
    for j, (ax, w) in enumerate(zip(axes[:, 0], weights, strict=True)):
        present = to_numpy(w) != 0
        ax.imshow(present, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        if j == n - 1:
            ax.set_xlabel(r"input (pre-synaptic) $k$")
        ax.set_ylabel(r"output $i$")
        title = titles[j] if titles is not None else f"sample {j + 1}"
        ax.set_title(f"{title}: {100 * present.mean():.1f}% present", fontsize="medium")
    return fig


def entropy_vs_pi(
    pi, entropies: Mapping[str, torch.Tensor], reference=None, reference_name="approximation"
) -> Figure:
    """Entropy of one connection against pi, one curve per label (chapter 1).

    A point at pi = 1 is drawn open and not joined to the curve: the convention jumps there.

    ``entropies`` maps a legend label (e.g. ``r"$\\Xi=0.1$"``) to the entropies at ``pi``
    (dots); ``reference`` optionally maps labels to curves drawn dashed on top of them, named
    ``reference_name`` in the legend (e.g. an approximation).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    x = to_numpy(pi)
    inside = x < 1  # pi = 1 is set to 0 by convention: a separate point, not joined by a line
    for j, (label, s) in enumerate(entropies.items()):
        y = to_numpy(s)
        ax.plot(x[inside], y[inside], "o-", ms=3, color=f"C{j}", label=label)
        ax.plot(x[~inside], y[~inside], "o", ms=5, mfc="none", color=f"C{j}")
        if reference is not None and label in reference:
            # on top of the dots, darker, so that it stays visible where the two agree
            ax.plot(x, to_numpy(reference[label]), "--", color="0.15", lw=1.2, zorder=3)
    if reference is not None:
        ax.plot([], [], "--", color="0.15", lw=1.2, label=reference_name)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel(r"probability of absence $\pi$")
    ax.set_ylabel(r"entropy $S$ (nats)")
    ax.legend(fontsize="small")
    return fig


def preactivation_histograms(
    samples: Sequence[torch.Tensor],
    G: Sequence[float],
    Delta: Sequence[float],
    titles: Sequence[str],
    ks: Sequence[float] | None = None,
    bins: int = 60,
) -> Figure:
    """Histograms of sampled pre-activations z with the Gaussian N(G, Delta^2) overlaid (ch. 2).

    One panel per entry; ``samples[j]`` is a 1-D tensor of z over sampled networks, ``G[j]`` and
    ``Delta[j]`` the moment prediction, ``ks[j]`` the Kolmogorov-Smirnov distance shown in the
    panel.
    """
    n = len(samples)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.3), layout="constrained", squeeze=False)
    for j, ax in enumerate(axes[0]):
        z = to_numpy(samples[j]).ravel()
        g, d = float(G[j]), float(Delta[j])
        lo, hi = min(z.min(), g - 4 * d), max(z.max(), g + 4 * d)
        ax.hist(z, bins=bins, range=(lo, hi), density=True, color=SLAB_COLOUR, alpha=0.5)
        grid = np.linspace(lo, hi, 400)
        ax.plot(grid, _gaussian(grid, g, d), color=THEORY_COLOUR, lw=1.5)
        ax.set_xlabel(r"pre-activation $z$")
        if j == 0:
            ax.set_ylabel(r"density $p(z)$")
        ax.set_title(titles[j], fontsize="medium")
        if ks is not None:
            box = {"facecolor": "white", "alpha": 0.8, "lw": 0}
            label = f"KS = {float(ks[j]):.3f}"
            ax.text(0.03, 0.95, label, transform=ax.transAxes, va="top", fontsize="small", bbox=box)
    fig.legend(
        handles=[
            plt.Rectangle((0, 0), 1, 1, color=SLAB_COLOUR, alpha=0.5),
            plt.Line2D([], [], color=THEORY_COLOUR),
        ],
        labels=["sampled networks", r"Gaussian $\mathcal{N}(G,\Delta^2)$"],
        loc="outside lower center",
        ncols=2,
        fontsize="small",
    )
    return fig


def ks_vs_fan_in(
    n_in, curves: Mapping[str, torch.Tensor], floor: float | None = None, xlabel: str | None = None
) -> Figure:
    """Kolmogorov-Smirnov distance to the Gaussian against the fan-in N_in, log-log (ch. 2).

    ``curves`` maps a legend label to KS values at ``n_in``. ``floor`` draws the level a perfect
    Gaussian would reach with the finite number of sampled networks (the Monte-Carlo noise).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    x = to_numpy(n_in)
    for label, ks in curves.items():
        ax.loglog(x, to_numpy(ks), "o-", ms=4, label=label)
    if floor is not None:
        ax.axhline(floor, color="0.4", ls=":", label="Monte-Carlo noise level")
    ax.set_xlabel(xlabel or r"fan-in $N_{\mathrm{in}}$")
    ax.set_ylabel(r"KS distance to $\mathcal{N}(G,\Delta^2)$")
    ax.legend(fontsize="small")
    return fig


@torch.no_grad()
def plot_decision_regions(ax, predict, x, y, *, n_grid: int = 200, title: str | None = None):
    """Draw the regions where ``predict`` (inputs -> logits (M, 2)) picks class 0 or 1, and the
    points (x, y) on top. Returns ``ax``. Thin: plotting only.
    """
    xx, yy, grid = decision_grid(x, n_grid)
    logits = predict(grid)
    p1 = torch.softmax(logits, dim=1)[:, 1].reshape(xx.shape)
    cmap = mcolors.ListedColormap(["#c6dbef", "#fdd0a2"])
    ax.contourf(xx, yy, (p1 > 0.5).double(), levels=[-0.5, 0.5, 1.5], cmap=cmap)
    ax.contour(xx, yy, p1, levels=[0.5], colors="k", linewidths=1.0)
    for c, (color, marker) in enumerate((("#08519c", "o"), ("#a63603", "^"))):
        sel = y == c
        ax.scatter(x[sel, 0], x[sel, 1], s=8, c=color, marker=marker, label=f"class {c}")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal")
    if title is not None:
        ax.set_title(title)
    return ax
