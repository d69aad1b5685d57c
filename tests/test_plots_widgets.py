"""Figure functions and widget explorers (chapters 1 and 2), headless."""

import math

import ipywidgets
import numpy as np
import pytest
import torch
from figures import close_figure, no_open_figures  # noqa: F401 (autouse fixture)
from figures import figure_text as _labels

from mfbook import plots, widgets
from mfbook.spike_slab import SpikeSlab

_close = close_figure


def test_spike_slab_distribution_labels_and_samples(gen):
    one = torch.ones(5000, dtype=torch.float64)
    w = SpikeSlab(0.3 * one, 0.5 * one, 0.04 * one).sample(gen)
    fig = plots.spike_slab_distribution(0.3, 0.5, 0.04, samples=w)
    text = _labels(fig)
    for symbol in (r"$w$", r"$p(w)$", r"$P(w=0)$", r"\pi", r"\Xi"):
        assert symbol in text
    right = fig.axes[1]
    assert right.patches[0].get_height() == pytest.approx(0.3)  # the spike bar has mass pi
    _close(fig)


def test_spike_slab_distribution_slab_integrates_to_one_minus_pi():
    pi, m, xi = 0.3, 0.5, 0.04
    fig = plots.spike_slab_distribution(pi, m, xi)
    (slab,) = fig.axes[0].lines
    grid, density = slab.get_xdata(), slab.get_ydata()
    assert density.max() == pytest.approx((1 - pi) / math.sqrt(2 * math.pi * xi))
    assert grid[density.argmax()] == pytest.approx(m, abs=grid[1] - grid[0])
    assert float(np.trapezoid(density, grid)) == pytest.approx(1 - pi, rel=1e-3)
    _close(fig)


def test_spike_slab_distribution_deterministic_slab():
    fig = plots.spike_slab_distribution(0.0, 1.0, 0.0)
    assert fig.axes[1].patches[0].get_height() == 0.0
    _close(fig)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((1.5, 0.0, 0.1), ValueError, "pi must lie in"),
        ((0.5, 0.0, -0.1), ValueError, "xi must be >= 0"),
        ((0.5, float("nan"), 0.1), ValueError, "m must be finite"),
        ((0.5, "1", 0.1), TypeError, "m must be a real number"),
    ],
)
def test_spike_slab_distribution_rejects_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        plots.spike_slab_distribution(*args)


def test_sparsity_patterns(gen):
    w = [torch.randn(20, 30, generator=gen) * (torch.rand(20, 30, generator=gen) < 0.5)]
    fig = plots.sparsity_patterns(w * 2, titles=["a", "b"])
    assert len(fig.axes) == 2
    text = _labels(fig)
    assert "$k$" in text and "$i$" in text and "% present" in text
    _close(fig)


def test_entropy_vs_pi():
    pi = torch.linspace(0, 1, 5)
    fig = plots.entropy_vs_pi(pi, {"a": pi, "b": -pi}, reference={"a": pi})
    assert r"$\pi$" in fig.axes[0].get_xlabel() and "$S$" in fig.axes[0].get_ylabel()
    # per label: the curve for pi < 1 and the separate point at pi = 1; one reference, its
    # legend entry; zero line
    assert len(fig.axes[0].lines) == 7
    assert list(fig.axes[0].lines[1].get_xdata()) == [1.0]
    reference = fig.axes[0].lines[2]
    assert reference.get_linestyle() == "--" and reference.get_zorder() > 2  # over the dots
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["a", "b", "approximation"]
    _close(fig)


def test_preactivation_histograms(gen):
    z = [torch.randn(1000, generator=gen), 2 + torch.randn(1000, generator=gen)]
    fig = plots.preactivation_histograms(z, [0.0, 2.0], [1.0, 1.0], ["one", "two"], ks=[0.01, 0.2])
    text = _labels(fig)
    assert "$z$" in text and "$p(z)$" in text
    panel_text = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert panel_text == ["KS = 0.010", "KS = 0.200"]
    _close(fig)


def test_ks_vs_fan_in():
    n = torch.tensor([1, 10, 100])
    fig = plots.ks_vs_fan_in(n, {"dense": torch.tensor([0.3, 0.1, 0.03])}, floor=0.01)
    ax = fig.axes[0]
    assert "N_{\\mathrm{in}}" in ax.get_xlabel() and "KS" in ax.get_ylabel()
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    _close(fig)


# -- widgets ----------------------------------------------------------------------------------


def test_spike_slab_explorer_updates_text_and_image():
    explorer = widgets.spike_slab_explorer(pi=0.2, m=0.5, xi=0.04, n_samples=2000)
    assert isinstance(explorer, ipywidgets.Widget)
    assert set(explorer.sliders) == {"pi", "m", "xi"}
    first_text, first_image = explorer.text.value, bytes(explorer.image.value)
    # the figure at its own size, its PNG at twice that many pixels; controls beside it
    shown = int(explorer.image.layout.width.removesuffix("px"))
    assert int.from_bytes(first_image[16:20], "big") == 2 * shown
    assert explorer.image.layout.max_width == "100%"
    assert explorer.children[1] is explorer.image and explorer.text in explorer.children[0].children
    assert "0.4000" in first_text  # mu = (1 - pi) m
    assert first_image.startswith(b"\x89PNG")
    explorer.sliders["pi"].value = 0.8  # the slider's observer calls update()
    assert explorer.text.value != first_text
    assert "0.1000" in explorer.text.value  # mu = 0.2 * 0.5
    assert bytes(explorer.image.value) != first_image
    explorer.sliders["xi"].value = 0.0
    explorer.update()  # and update() can be called directly
    assert "0.0400" in explorer.text.value  # Var = pi (1 - pi) m^2 = 0.16 * 0.25


def test_clt_explorer_updates_ks_text():
    explorer = widgets.clt_explorer(n_in=1, pi=0.5, n_networks=2000)
    assert isinstance(explorer, ipywidgets.Widget)
    ks_one = float(explorer.text.value.split("KS distance = ")[1].split()[0])
    assert ks_one > 0.2  # one connection, absent half of the time: far from Gaussian
    explorer.sliders["n_in"].value = 256
    ks_wide = float(explorer.text.value.split("KS distance = ")[1].split()[0])
    assert ks_wide < 0.06
    explorer.sliders["active"].value = 0.01  # 3 active inputs out of 256
    assert "active inputs = 3" in explorer.text.value


@pytest.mark.parametrize(
    ("builder", "kwargs", "match"),
    [
        (widgets.spike_slab_explorer, {"pi": -0.1}, "pi must lie in"),
        (widgets.spike_slab_explorer, {"m": 5.0}, "the sliders cover"),
        (widgets.spike_slab_explorer, {"n_samples": 0}, "n_samples"),
        (widgets.clt_explorer, {"n_in": 3}, "n_in must be one of"),
        (widgets.clt_explorer, {"pi": 1.0}, "pi must lie in"),
        (widgets.clt_explorer, {"active": 0.0}, "active"),
    ],
)
def test_explorers_reject_bad_input(builder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        builder(**kwargs)
