"""Figure functions of chapters 6 and 7, headless, on small synthetic inputs."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from figures import close_figure, no_open_figures  # noqa: F401 (autouse fixture)

from mfbook import plots


def _close(fig):
    close_figure(fig, axis_labels=True)


def test_subnetwork_error_histogram_in_percent(gen):
    errors = 0.035 + 0.002 * torch.randn(100, generator=gen)
    fig = plots.subnetwork_error_histogram(
        {"stored": errors, "live": errors[:10]}, {"mean network": 0.034}
    )
    ax = fig.axes[0]
    assert "%" in ax.get_xlabel()
    # the reference line sits at the error in percent
    assert ax.lines[0].get_xdata()[0] == pytest.approx(3.4)
    assert len(ax.patches) == 2  # one step histogram per set of errors
    assert "n = 100" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    _close(fig)


def test_subnetwork_error_histogram_rejects_empty():
    with pytest.raises(ValueError, match="errors must be a non-empty mapping"):
        plots.subnetwork_error_histogram({})


def test_ensemble_error_vs_k_log2_axis():
    K = np.array([1, 2, 4, 8])
    mean = np.array([0.04, 0.035, 0.033, 0.032])
    fig = plots.ensemble_error_vs_k(
        K, {"sampled": (mean, 0.001 * np.ones(4)), "mf": (mean + 0.001, None)}, {"mean": 0.034}
    )
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "$K$" in ax.get_xlabel() and "%" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8"]
    assert ax.lines[0].get_ydata()[0] == pytest.approx(4.0)
    _close(fig)


def test_entropy_profiles_one_line_per_size():
    fig = plots.entropy_profiles({"10k": [-1.0, -0.5, -0.7, -0.9], "20k": [-1.1, -0.4, -0.6, -1.0]})
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert list(ax.lines[1].get_xdata()) == [1, 2, 3, 4]
    assert "nats" in ax.get_ylabel() and "$l$" in ax.get_xlabel()
    _close(fig)


def test_entropy_profiles_with_error_bars_into_a_panel():
    fig, axes = plt.subplots(1, 2)
    profiles = {"10k": [-1.0, -0.5, -0.7], "20k": [-1.1, -0.4, -0.6]}
    errors = {"10k": [0.1, 0.2, 0.1], "20k": [0.0, 0.1, 0.1]}
    out = plots.entropy_profiles(profiles, errors, ax=axes[1], title="box")
    assert out is fig and axes[1].get_title() == "box" and not axes[0].lines
    assert len(axes[1].containers) == 2  # one errorbar container per size
    with pytest.raises(ValueError, match="errors must have the labels"):
        plots.entropy_profiles(profiles, {"10k": [0, 0, 0]})
    plt.close(fig)


def test_entropy_profiles_rejects_empty():
    with pytest.raises(ValueError, match="profiles"):
        plots.entropy_profiles({})


def test_parameter_distributions_point_masses(gen):
    pi = torch.rand(50, 40, generator=gen)
    pi[:10] = 0.0
    pi[-5:] = 1.0
    xi = torch.rand(50, 40, generator=gen) * 0.01
    xi[:20] = 0.0
    fig = plots.parameter_distributions([pi, pi.T], [xi, torch.zeros(40, 50)])
    left, right = fig.axes
    # the ECDF of pi reaches the fraction of exact zeros at pi = 0 and 1 at pi = 1
    x, y = left.lines[0].get_xdata(), left.lines[0].get_ydata()
    assert y[np.searchsorted(x, 0.0, side="right") - 1] == pytest.approx(0.2)
    assert y[-1] == 1.0
    legend = " ".join(t.get_text() for t in right.get_legend().get_texts())
    assert "40%" in legend and "100%" in legend  # fractions of Xi == 0 per layer
    assert right.get_xscale() == "log"
    _close(fig)


def test_parameter_distributions_rejects_mismatch():
    with pytest.raises(ValueError, match="one tensor per layer"):
        plots.parameter_distributions([torch.zeros(2, 2)], [])


def test_correlation_check_diagonal_and_shapes(gen):
    p = torch.rand(30, generator=gen)
    fig = plots.correlation_check(p, {"sampled": p + 0.01, "mf": torch.zeros(30)})
    ax = fig.axes[0]
    diag = ax.lines[0]
    assert list(diag.get_xdata()) == list(diag.get_ydata())
    assert "correlation" in ax.get_xlabel() and "correlation" in ax.get_ylabel()
    _close(fig)
    with pytest.raises(ValueError, match="has 3 values"):
        plots.correlation_check(p, {"bad": torch.zeros(3)})
    plt.close("all")
