"""Figure functions of the book (chapters 1 and 2). Thin: the numbers come from the science modules.

Every function returns a :class:`matplotlib.figure.Figure` (white face, labelled axes with the
paper's symbols) and leaves showing or closing it to the caller. Figures use the constrained
layout, so no layout warning is raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from mfbook import _checks

#: Colours used throughout: readable on a white figure in both light and dark page themes.
SPIKE_COLOUR = "tab:red"
SLAB_COLOUR = "tab:blue"
THEORY_COLOUR = "black"


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


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
        w = _np(samples).ravel()
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
        present = _np(w) != 0
        ax.imshow(present, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        if j == n - 1:
            ax.set_xlabel(r"input (pre-synaptic) $k$")
        ax.set_ylabel(r"output $i$")
        title = titles[j] if titles is not None else f"sample {j + 1}"
        ax.set_title(f"{title}: {100 * present.mean():.1f}% present", fontsize="medium")
    return fig


def entropy_vs_pi(pi, entropies: Mapping[str, torch.Tensor], reference=None) -> Figure:
    """Entropy of one connection against pi, one curve per label (chapter 1).

    A point at pi = 1 is drawn open and not joined to the curve: the convention jumps there.

    ``entropies`` maps a legend label (e.g. ``r"$\\Xi=0.1$"``) to the entropies at ``pi``;
    ``reference`` optionally maps labels to curves drawn dashed (e.g. an approximation).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    x = _np(pi)
    inside = x < 1  # pi = 1 is set to 0 by convention: a separate point, not joined by a line
    for j, (label, s) in enumerate(entropies.items()):
        y = _np(s)
        ax.plot(x[inside], y[inside], "o-", ms=3, color=f"C{j}", label=label)
        ax.plot(x[~inside], y[~inside], "o", ms=5, mfc="none", color=f"C{j}")
        if reference is not None and label in reference:
            ax.plot(x, _np(reference[label]), "--", color=f"C{j}", lw=1)
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
        z = _np(samples[j]).ravel()
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
    x = _np(n_in)
    for label, ks in curves.items():
        ax.loglog(x, _np(ks), "o-", ms=4, label=label)
    if floor is not None:
        ax.axhline(floor, color="0.4", ls=":", label="Monte-Carlo noise level")
    ax.set_xlabel(xlabel or r"fan-in $N_{\mathrm{in}}$")
    ax.set_ylabel(r"KS distance to $\mathcal{N}(G,\Delta^2)$")
    ax.legend(fontsize="small")
    return fig


# --- chapters 4-5 ---
#: Colours of the three kinds of connection (chapter 5) and of the perturbation curves.
KIND_COLOURS = {"vip": "tab:red", "random": "tab:blue", "uip": "tab:green"}
#: What each kind of perturbation does (chapter 5): the legend of :func:`perturbation_panels`,
#: the buttons and text of ``widgets.perturbation_explorer``. Plain text (no TeX), since widget
#: buttons show it verbatim; each label ends with the name of the connections it perturbs.
KIND_LABELS = {"vip": "remove VIP", "random": "remove as many variable", "uip": "switch on UIP"}
#: The connections each kind of perturbation acts on (the last word of its label).
KIND_CONNECTIONS = {"vip": "VIP", "random": "variable", "uip": "UIP"}
CATEGORY_COLOURS = {
    "variable": "0.82",
    "VIP": "tab:red",
    "UIP": "tab:blue",
    "never active": "white",
}


def digit_grid(x, y, n_rows: int = 2, n_cols: int = 10) -> Figure:
    """The first ``n_rows * n_cols`` images of ``x`` (rows of 784 pixels), titled by label.

    Chapter 4.
    """
    images = _np(x)[: n_rows * n_cols].reshape(-1, 28, 28)
    labels = _np(y)[: n_rows * n_cols].astype(int)
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
        v = 100 * np.atleast_2d(_np(values))
        x = np.arange(1, v.shape[1] + 1) if epochs is None else _np(epochs)
        mean = v.mean(0)
        n = v.shape[0]
        ax.plot(x, mean, color=f"C{j}", lw=1.5, label=label + (f" ({n} runs)" if n > 1 else ""))
        if n > 1:
            std = v.std(0)
            ax.fill_between(x, mean - std, mean + std, color=f"C{j}", alpha=0.25, lw=0)
    if log:
        from matplotlib.ticker import FuncFormatter

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
        pi, m, xi = (_np(t).ravel() for t in (pi, m, xi))
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
        img = _np(values).reshape(28, 28)
        shown = ax.imshow(img, cmap="viridis", interpolation="nearest")
        if mask is not None:
            ax.contour(_np(mask).reshape(28, 28), levels=[0.5], colors="white", linewidths=0.8)
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
    c = _np(counts)
    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    colours = np.array([SLAB_COLOUR] * len(c), dtype=object)
    if highlight is not None:
        colours[_np(highlight).astype(bool)] = SPIKE_COLOUR
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
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    m, vip, uip = _np(m), _np(vip).astype(bool), _np(uip).astype(bool)
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
            code[_np(inactive).astype(bool)] = names.index("never active")
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
    (keys "fraction", "error_vip", "error_random", "error_uip", "count_*").
    """
    n = len(curves)
    fig, axes = plt.subplots(
        1, n, figsize=(3.6 * n + 0.4, 3.6), layout="constrained", squeeze=False, sharey=True
    )
    for j, (ax, c) in enumerate(zip(axes[0], curves, strict=True)):
        f = _np(c["fraction"])
        for kind, label in KIND_LABELS.items():
            total = c[f"count_{kind}"][-1]
            ax.plot(
                f,
                100 * _np(c[f"error_{kind}"]),
                "o-",
                ms=4,
                color=KIND_COLOURS[kind],
                label=f"{label} (up to {total})",
            )
        ax.set_xlabel("fraction $f$")
        if j == 0:
            ax.set_ylabel("test error of sampled networks (%)")
        ax.set_title(titles[j] if titles is not None else f"layer {j + 1}", fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper left")
    return fig


def error_strip(errors: Mapping[str, Sequence]) -> Figure:
    """Test errors (%) of sampled sub-networks, one row of dots per label, means as bars (ch. 5)."""
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.7 * len(errors)), layout="constrained")
    for j, values in enumerate(errors.values()):
        v = 100 * _np(values).ravel()
        ax.plot(v, np.full(v.shape, j), "o", ms=5, alpha=0.6, color=f"C{j}")
        ax.plot([v.mean()] * 2, [j - 0.3, j + 0.3], color=f"C{j}", lw=2)
    ax.set_yticks(range(len(errors)), list(errors))
    ax.set_ylim(-0.6, len(errors) - 0.4)
    ax.set_xlabel("test error of one sampled sub-network (%)")
    ax.set_ylabel("network")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


# --- chapters 6-7 ---
# Figures of chapter 6 (the ensemble of sub-networks) and chapter 7 (connections and limits).
# Thin like the rest: every number is computed in the chapter or in the science modules.


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
    values = {k: 100 * _np(v).ravel() for k, v in errors.items()}
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


def presence_difference(
    measured: Sequence[Mapping[str, float]], predicted: Sequence[Mapping[str, float]]
) -> Figure:
    """Per layer and category, the fraction of connections present in one sampled network and
    absent in another: measured (bars) and predicted, 2 pi (1 - pi) averaged (markers) (ch. 6).

    ``measured[l]`` and ``predicted[l]`` map a category label to a fraction for layer l + 1;
    the categories (and their order) are those of ``measured[0]``.
    """
    if len(measured) == 0 or len(measured) != len(predicted):
        raise ValueError(
            f"measured and predicted need one mapping per layer (same length, at least 1), "
            f"got {len(measured)} and {len(predicted)}"
        )
    cats = list(measured[0])
    n_layers, n_cats = len(measured), len(cats)
    width = 0.8 / n_cats
    fig, ax = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    for j, cat in enumerate(cats):
        x = np.arange(n_layers) + (j - (n_cats - 1) / 2) * width
        ax.bar(x, [measured[l][cat] for l in range(n_layers)], width, color=f"C{j}", label=cat)
        ax.plot(
            x,
            [predicted[l][cat] for l in range(n_layers)],
            "_",
            ms=14,
            mew=2.5,
            color=THEORY_COLOUR,
            label=r"predicted $\langle 2\pi(1-\pi)\rangle$" if j == 0 else None,
        )
    ax.set_xticks(np.arange(n_layers), [f"layer {l + 1}" for l in range(n_layers)])
    ax.set_xlabel(r"weight layer $l$")
    ax.set_ylabel("fraction whose presence differs")
    top = max(max(d.values()) for d in (*measured, *predicted))
    ax.set_ylim(0, max(0.05, 1.45 * top))  # room for the legend above the bars
    ax.legend(fontsize="small", ncols=3, loc="upper center")
    ax.set_title("two sampled sub-networks: where they differ", fontsize="medium")
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
    k = _np(K)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    for j, (label, (mean, spread)) in enumerate(curves.items()):
        yerr = None if spread is None else 100 * _np(spread)
        ax.errorbar(
            k, 100 * _np(mean), yerr=yerr, fmt="o-", ms=4, capsize=3, color=f"C{j}", label=label
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


def entropy_profiles(profiles: Mapping[str, Sequence[float]]) -> Figure:
    """Mean per-connection entropy of every layer, one line per label (chapter 6)."""
    _check_nonempty("profiles", profiles)
    fig, ax = plt.subplots(figsize=(6.0, 4.0), layout="constrained")
    n_max = 0
    for j, (label, s) in enumerate(profiles.items()):
        s = _np(s).ravel()
        n_max = max(n_max, s.size)
        ax.plot(np.arange(1, s.size + 1), s, "o-", color=f"C{j}", label=label)
    ax.set_xticks(np.arange(1, n_max + 1))
    ax.set_xlabel(r"weight layer $l$ (1 = input side)")
    ax.set_ylabel(r"mean entropy per connection $\bar S_l$ (nats)")
    ax.legend(fontsize="small")
    ax.set_title("entropy profile across layers", fontsize="medium")
    return fig


def _ecdf(values):
    v = np.sort(_np(values).ravel())
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
        x = _np(x).ravel()
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
    p = _np(predicted).ravel()
    fig, ax = plt.subplots(figsize=(5.2, 4.6), layout="constrained")
    lo = min(-0.1, p.min(), *(_np(v).min() for v in measured.values()))
    hi = max(1.0, p.max())
    ax.plot([lo, hi], [lo, hi], color=THEORY_COLOUR, lw=1, label="measured = predicted")
    markers = "os^v"
    for j, (label, v) in enumerate(measured.items()):
        v = _np(v).ravel()
        if v.shape != p.shape:
            raise ValueError(f"measured[{label!r}] has {v.size} values, predicted {p.size}")
        ax.plot(p, v, markers[j % 4], ms=4, alpha=0.7, color=f"C{j}", label=label)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel(xlabel or r"predicted correlation $r_{\mathrm{pred}}$")
    ax.set_ylabel(r"measured correlation $r$")
    ax.legend(fontsize="small")
    return fig
