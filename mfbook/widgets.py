"""Interactive explorers of the book (ipywidgets; chapters 1, 2 and 5). Thin: no science inside.

Each builder returns an :class:`Explorer`: sliders with a text panel (``.text``, HTML) beside a
picture (``.image``, PNG of a figure from :mod:`mfbook.plots`, at twice its displayed pixel
density and shown at its own size, never stretched), wrapping below it on a narrow screen. Moving a
slider calls :meth:`Explorer.update`, which can also be called directly: that is how the tests
drive the explorers without a browser or a kernel. In the HTML book the explorers show the state
they were saved in; with a running kernel they are live.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from mfbook import _checks, analysis, plots
from mfbook.moments import gaussian_ks_distance, preactivation_moments, sample_preactivations
from mfbook.spike_slab import SpikeSlab

#: A figure's displayed size: this many CSS pixels per inch of its matplotlib size; its PNG has
#: twice as many, so that it is sharp on high-density screens.
CSS_DPI = 80


class Explorer(widgets.HBox):
    """Sliders and a text panel beside a figure; ``update()`` redraws from the sliders' values."""

    def __init__(self, sliders: dict[str, widgets.Widget], draw: Callable[..., tuple[str, object]]):
        self.sliders = sliders
        self.text = widgets.HTML()
        self.image = widgets.Image(format="png")
        self._draw = draw
        controls = widgets.VBox(
            [*sliders.values(), self.text], layout=widgets.Layout(width="360px")
        )
        super().__init__(
            [controls, self.image],
            layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        for slider in sliders.values():
            slider.observe(lambda _change: self.update(), names="value")
        self.update()

    def values(self) -> dict[str, float]:
        return {name: slider.value for name, slider in self.sliders.items()}

    def update(self) -> None:
        """Recompute from the current slider values: new text and a new figure."""
        text, fig = self._draw(**self.values())
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=2 * CSS_DPI)
        width = round(fig.get_size_inches()[0] * CSS_DPI)
        plt.close(fig)
        self.image.value = buffer.getvalue()
        self.image.layout = widgets.Layout(width=f"{width}px", max_width="100%", height="auto")
        self.text.value = text


def _slider(description: str, value: float, lo: float, hi: float, step: float) -> widgets.Widget:
    return widgets.FloatSlider(
        value=value,
        min=lo,
        max=hi,
        step=step,
        description=description,
        continuous_update=False,
        readout_format=".3f",
        style={"description_width": "initial"},
    )


def spike_slab_explorer(
    pi: float = 0.3, m: float = 0.5, xi: float = 0.04, n_samples: int = 20_000, seed: int = 0
) -> Explorer:
    """Chapter 1: sliders for pi, m and xi; P(w), a histogram of samples and the moments.

    The text panel shows mu, rho and Var[w] from the formulas of :class:`SpikeSlab` next to the
    same quantities estimated from ``n_samples`` draws (seeded by ``seed``).
    """
    pi, m, xi = _checks.spike_slab_scalars(pi, m, xi)
    n_samples = _checks.positive_int("n_samples", n_samples)
    if not (-2.0 <= m <= 2.0 and xi <= 1.0):
        raise ValueError(f"the sliders cover m in [-2, 2] and xi in [0, 1], got m={m}, xi={xi}")

    def draw(pi, m, xi):
        one = torch.ones(n_samples, dtype=torch.float64)
        ss = SpikeSlab(pi * one, m * one, xi * one)
        w = ss.sample(torch.Generator().manual_seed(seed))
        formula = (ss.mean()[0], ss.second_moment()[0], ss.variance()[0])
        sampled = (w.mean(), (w**2).mean(), w.var())
        rows = "".join(
            f"<tr><td>{name}</td><td>{float(f):.4f}</td><td>{float(s):.4f}</td></tr>"
            for name, f, s in zip(
                ("&mu; = E[w]", "&rho; = E[w&sup2;]", "Var[w]"), formula, sampled, strict=True
            )
        )
        text = (
            f"<table><tr><th>moment</th><th>formula</th><th>{n_samples} samples</th></tr>"
            f"{rows}<tr><td>P(w = 0)</td><td>{pi:.4f}</td>"
            f"<td>{float((w == 0).double().mean()):.4f}</td></tr></table>"
        )
        return text, plots.spike_slab_distribution(pi, m, xi, samples=w)

    sliders = {
        "pi": _slider("π (absent)", pi, 0.0, 1.0, 0.01),
        "m": _slider("m (slab mean)", m, -2.0, 2.0, 0.05),
        "xi": _slider("Ξ (slab variance)", xi, 0.0, 1.0, 0.005),
    }
    return Explorer(sliders, draw)


#: Fan-in values offered by the chapter 2 explorer.
FAN_IN_OPTIONS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def clt_explorer(
    n_in: int = 16,
    pi: float = 0.5,
    active: float = 1.0,
    n_networks: int = 4_000,
    seed: int = 0,
) -> Explorer:
    """Chapter 2: fan-in N_in, absence probability pi and the fraction of active inputs.

    One output unit with N_in inputs: m_k ~ N(0, 1), xi_k = 0.05 and pi_k = pi for every
    connection; inputs h_k ~ U(0, 1), of which only the first ``ceil(active * N_in)`` are non-zero.
    The figure is the histogram of z over ``n_networks`` sampled networks against N(G, Delta^2);
    the text gives G, Delta and the Kolmogorov-Smirnov distance.
    """
    if n_in not in FAN_IN_OPTIONS:
        raise ValueError(f"n_in must be one of {FAN_IN_OPTIONS}, got {n_in!r}")
    if not 0.0 <= pi <= 0.99:
        raise ValueError(f"pi must lie in [0, 0.99] (so that some connection is present), got {pi}")
    if not 0.0 < active <= 1.0:
        raise ValueError(f"active (fraction of non-zero inputs) must lie in (0, 1], got {active}")
    n_networks = _checks.positive_int("n_networks", n_networks)

    def draw(n_in, pi, active):
        gen = torch.Generator().manual_seed(seed)
        kw = {"dtype": torch.float64}
        m = torch.randn(1, n_in, generator=gen, **kw)
        xi = torch.full((1, n_in), 0.05, **kw)
        h = torch.rand(1, n_in, generator=gen, **kw)
        n_active = max(1, math.ceil(active * n_in))
        h[:, n_active:] = 0.0
        pis = torch.full((1, n_in), pi, **kw)
        G, Delta = preactivation_moments(h, pis, m, xi)
        z = sample_preactivations(h, pis, m, xi, n_networks, generator=gen)[:, 0, 0]
        ks = float(gaussian_ks_distance(z[:, None], G[0], Delta[0])[0])
        text = (
            f"N<sub>in</sub> = {n_in}, active inputs = {n_active}, "
            f"expected present and active terms = {(1 - pi) * n_active:.1f}<br>"
            f"G = {float(G):.3f}, &Delta; = {float(Delta):.3f}, "
            f"KS distance = {ks:.3f} ({n_networks} sampled networks)"
        )
        title = rf"$N_{{\mathrm{{in}}}}={n_in}$, $\pi={pi:.2f}$, {n_active} active"
        fig = plots.preactivation_histograms([z], [float(G)], [float(Delta)], [title], ks=[ks])
        return text, fig

    sliders = {
        "n_in": widgets.SelectionSlider(
            options=FAN_IN_OPTIONS,
            value=n_in,
            description="N_in (fan-in)",
            continuous_update=False,
            style={"description_width": "initial"},
        ),
        "pi": _slider("π (absent)", pi, 0.0, 0.99, 0.01),
        "active": _slider("fraction of active inputs", active, 0.01, 1.0, 0.01),
    }
    return Explorer(sliders, draw)


# --- chapter 5 ---
def perturbation_explorer(
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    layer: int = 0,
    kind: str = "vip",
    fraction: float = 1.0,
    n_networks: int = 10,
    seed: int = 0,
) -> Explorer:
    """Chapter 5: perturb a fraction f of one layer's connections, watch sampled networks' error.

    ``kind`` is ``"vip"`` (remove f of the VIP connections), ``"random"`` (remove the same number
    of randomly chosen variable connections) or ``"uip"`` (switch on f of the UIP connections with
    weights drawn from Normal(0, 1)). Each update is one
    :func:`mfbook.analysis.perturbation_point`, the computation behind
    :func:`mfbook.analysis.perturbation_curves`, whose numbers it reproduces for the same ``seed``.
    The figure shows the test errors on (x, y) of ``n_networks`` sub-networks sampled from the
    perturbed and from the unperturbed ensemble.
    """
    analysis._check_model(model)
    analysis._layer_index(model, layer)
    _checks.choice("kind", kind, analysis.KINDS)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(f"fraction must be a number in [0, 1], got {type(fraction).__name__}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    n_networks = _checks.positive_int("n_networks", n_networks)
    n_layers = len(model.layers)
    totals = []  # per layer, the size of each category f is a fraction of
    for lay in model.layers:
        cats = lay.spike_slab().categories()
        totals.append({c: int(getattr(cats, c).sum()) for c in set(analysis.FRACTION_OF.values())})
    base = analysis.subnetwork_errors(model, x, y, n_networks, torch.Generator().manual_seed(seed))

    def draw(layer, kind, fraction):
        count, errors = analysis.perturbation_point(
            model, x, y, layer, kind, fraction, n_networks, seed
        )
        of = analysis.FRACTION_OF[kind]  # "vip" or "uip": a category and the kind acting on it
        label = analysis.KIND_LABELS[kind]
        text = (
            f"layer {layer + 1}, {label}: {count} {plots.KIND_CONNECTIONS[kind]} connections "
            f"(f = {fraction:.2f} of {totals[layer][of]} {plots.KIND_CONNECTIONS[of]})<br>"
            f"test error of {n_networks} sampled sub-networks on {len(y)} test images: "
            f"{100 * float(errors.mean()):.2f}% &plusmn; {100 * float(errors.std()):.2f}% "
            f"(unperturbed: {100 * float(base.mean()):.2f}% &plusmn; "
            f"{100 * float(base.std()):.2f}%)"
        )
        fig = plots.error_strip({"unperturbed": base, f"perturbed (f = {fraction:.2f})": errors})
        fig.axes[0].set_title(f"layer {layer + 1}: {label}", fontsize="medium")
        return text, fig

    style = {"description_width": "initial"}
    sliders = {
        "layer": widgets.Dropdown(
            options=[(f"layer {l + 1}", l) for l in range(n_layers)],
            value=layer,
            description="layer",
            style=style,
        ),
        "kind": widgets.ToggleButtons(
            options=[(label, k) for k, label in analysis.KIND_LABELS.items()],
            value=kind,
            description="perturbation",
            style={**style, "button_width": "16em"},
        ),
        "fraction": _slider("fraction f", float(fraction), 0.0, 1.0, 0.05),
    }
    return Explorer(sliders, draw)
