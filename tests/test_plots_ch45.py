"""Figure functions and the perturbation explorer of chapters 4 and 5, headless."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from figures import close_figure, no_open_figures  # noqa: F401 (autouse fixture)
from figures import figure_text as _labels

from mfbook import analysis, plots, widgets
from mfbook.nn import MeanFieldMLP

_close = close_figure


def _tiny_model(seed=0):
    """A 784-6-3 ensemble with some exact VIP (pi = xi = 0) and UIP (pi = 1) connections."""
    gen = torch.Generator().manual_seed(seed)
    model = MeanFieldMLP([784, 6, 3])
    model.reset_parameters(gen)
    with torch.no_grad():
        for lay in model.layers:
            u = torch.rand(lay.pi.shape, generator=gen)
            lay.pi.copy_(torch.rand(lay.pi.shape, generator=gen))
            lay.pi[u < 0.3] = 0.0
            lay.xi[u < 0.3] = 0.0  # VIP
            lay.pi[u > 0.8] = 1.0  # UIP
            lay.m.mul_(30.0)
    return model


def test_digit_grid_titles_are_labels():
    x = torch.rand(6, 784)
    y = torch.arange(6)
    fig = plots.digit_grid(x, y, n_rows=2, n_cols=3)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"label {k}" for k in range(6)]
    assert fig.get_supxlabel() and fig.get_supylabel()
    _close(fig)


def test_error_curves_band_only_for_several_runs():
    runs = np.array([[0.5, 0.2, 0.1], [0.4, 0.25, 0.12]])
    fig = plots.error_curves({"gBP": runs, "one run": runs[0]}, title="t")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and "test error (%)" in ax.get_ylabel()
    assert len(ax.collections) == 1  # one +-std band, for the entry with two runs
    assert np.allclose(ax.lines[0].get_ydata(), 100 * runs.mean(0))
    assert "2 runs" in ax.get_legend().get_texts()[0].get_text()
    _close(fig)


def test_parameter_histograms_report_exact_values():
    model = _tiny_model()
    fig = plots.parameter_histograms(model.params())
    assert len(fig.axes) == 6
    text = _labels(fig)
    for symbol in (r"$\pi$", "$m$", r"$\Xi$", "connections", "layer 2"):
        assert symbol in text
    pi = model.layers[0].pi.detach()
    notes = fig.axes[0].texts[0].get_text()
    assert f"= 1$: {100 * float((pi == 1).double().mean()):.1f}%" in notes
    _close(fig)


def test_pixel_maps_and_unit_counts():
    maps = {"a": torch.rand(784), "b": np.arange(784)}
    mask = np.zeros(784, dtype=bool)
    mask[:28] = True
    fig = plots.pixel_maps(maps, mask=mask, colorbar_labels=["x", "y"])
    text = _labels(fig)
    assert "pixel column" in text and "pixel row" in text and "a" in text
    _close(fig)
    fig = plots.unit_counts([3, 0, 5], highlight=[True, False, False], label="dead")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "hidden unit $i$" and ax.get_ylabel() == "VIP connections"
    assert [p.get_height() for p in ax.patches[:3]] == [3, 0, 5]
    _close(fig)


def test_receptive_fields():
    model = _tiny_model()
    cats = model.layers[0].spike_slab().categories()
    fig = plots.receptive_fields(
        model.layers[0].m.detach(), cats.vip, cats.uip, [0, 2], inactive=torch.zeros(784).bool()
    )
    text = _labels(fig)
    assert "unit 0" in text and "unit 2" in text and "$m$" in text and "kind" in text
    _close(fig)


def test_perturbation_panels_from_analysis():
    model = _tiny_model()
    x = torch.rand(40, 784)
    y = torch.randint(0, 3, (40,))
    curves = [
        analysis.perturbation_curves(model, x, y, l, fractions=(0.0, 1.0), n_networks=2)
        for l in range(2)
    ]
    fig = plots.perturbation_panels(curves)
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert ax.get_xlabel() == "fraction $f$" and "test error" in ax.get_ylabel()
    # one error-bar container per kind: the mean line, bars of one standard error
    assert len(ax.containers) == 3
    line, _caps, (bars,) = ax.containers[0]
    assert np.allclose(line.get_ydata(), 100 * np.array(curves[0]["error_vip"]))
    half = [(seg[1, 1] - seg[0, 1]) / 2 for seg in bars.get_segments()]
    assert np.allclose(half, 100 * np.array(curves[0]["sem_vip"]))
    assert ax.get_ylim()[0] == 0  # a small rise is not magnified
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for text, kind in zip(legend, analysis.KINDS, strict=True):
        assert text == f"{analysis.KIND_LABELS[kind]} (up to {curves[0][f'count_{kind}'][-1]})"
    _close(fig)


def test_error_strip():
    fig = plots.error_strip({"a": [0.1, 0.2], "b": torch.tensor([0.3])})
    ax = fig.axes[0]
    assert "test error" in ax.get_xlabel() and ax.get_ylabel() == "network"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    _close(fig)


def test_perturbation_explorer_updates_and_matches_the_analysis():
    model = _tiny_model()
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(60, 784, generator=gen)
    y = torch.randint(0, 3, (60,), generator=gen)
    explorer = widgets.perturbation_explorer(model, x, y, fraction=0.0, n_networks=3)
    before = explorer.text.value
    assert "layer 1" in before and " 0 VIP connections" in before
    assert explorer.image.value[:4] == b"\x89PNG"
    explorer.sliders["fraction"].value = 1.0  # the observer calls update()
    after = explorer.text.value
    assert after != before
    n_vip = int(model.layers[0].spike_slab().categories().vip.sum())
    assert f"{n_vip} VIP connections" in after
    # the same numbers as the analysis for the same seed
    curve = analysis.perturbation_curves(model, x, y, 0, fractions=(1.0,), n_networks=3)
    assert f"{100 * curve['error_vip'][0]:.2f}%" in after
    explorer.sliders["kind"].value = "uip"
    explorer.sliders["layer"].value = 1
    assert "layer 2, switch on UIP" in explorer.text.value
    plt.close("all")


def test_kind_labels_cover_the_kinds_and_end_with_the_perturbed_connections():
    assert tuple(analysis.KIND_LABELS) == analysis.KINDS == tuple(plots.KIND_COLOURS)
    ends = {kind: label.split()[-1] for kind, label in analysis.KIND_LABELS.items()}
    assert ends == {"vip": "VIP", "random": "variable", "uip": "UIP"} == plots.KIND_CONNECTIONS
    assert not any("$" in label for label in analysis.KIND_LABELS.values())  # shown verbatim


@pytest.mark.parametrize("kind", ["vip", "random", "uip"])
def test_perturbation_explorer_shows_the_numbers_of_the_analysis(kind):
    model = _tiny_model(1)
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(50, 784, generator=gen)
    y = torch.randint(0, 3, (50,), generator=gen)
    explorer = widgets.perturbation_explorer(
        model, x, y, layer=1, kind=kind, fraction=0.35, n_networks=4, seed=2
    )
    curve = analysis.perturbation_curves(model, x, y, 1, fractions=(0.35,), n_networks=4, seed=2)
    count, errors = analysis.perturbation_point(model, x, y, 1, kind, 0.35, 4, seed=2)
    assert count == curve[f"count_{kind}"][0] and float(errors.mean()) == curve[f"error_{kind}"][0]
    noun = {"vip": "VIP", "random": "variable", "uip": "UIP"}[kind]
    text = explorer.text.value
    assert f"layer 2, {analysis.KIND_LABELS[kind]}: {count} {noun} connections" in text
    assert f"{100 * float(errors.mean()):.2f}% &plusmn; {100 * float(errors.std()):.2f}%" in text
    options = explorer.sliders["kind"].options
    assert [label for label, _ in options] == list(analysis.KIND_LABELS.values())
    plt.close("all")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer": 2}, ValueError, "layer must be"),
        ({"kind": "all"}, ValueError, "kind must be one of"),
        ({"fraction": 1.5}, ValueError, "fraction must lie in"),
        ({"fraction": "1"}, TypeError, "fraction must be a number"),
        ({"n_networks": 0}, ValueError, "n_networks must be"),
    ],
)
def test_perturbation_explorer_rejects_bad_input(kwargs, error, match):
    x, y = torch.rand(4, 784), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(error, match=match):
        widgets.perturbation_explorer(_tiny_model(), x, y, **kwargs)


def test_perturbation_explorer_needs_a_mean_field_model():
    with pytest.raises(TypeError, match="MeanFieldMLP"):
        widgets.perturbation_explorer(torch.nn.Linear(784, 3), torch.rand(2, 784), torch.zeros(2))
