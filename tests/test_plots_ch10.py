"""Figure functions of chapter 10, headless."""

import pytest
import torch
from figures import close_figure, figure_text, no_open_figures  # noqa: F401 (autouse fixture)

from mfbook import plots
from mfbook.relatives import metrics


def test_reliability_diagrams_one_panel_per_method():
    probs = torch.softmax(torch.randn(200, 10, generator=torch.Generator().manual_seed(0)), 1)
    y = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(1))
    rel = metrics.reliability(probs, y)._asdict()
    fig = plots.reliability_diagrams({"bp": rel, "gbp": rel})
    assert len(fig.axes) == 2 and "gBP" in figure_text(fig) and "ECE" in figure_text(fig)
    close_figure(fig, axis_labels=True)
    with pytest.raises(ValueError, match="at least one"):
        plots.reliability_diagrams({})
    with pytest.raises(ValueError, match="one more edge"):
        plots.reliability_diagrams({"bp": {**rel, "edges": rel["edges"][:-1]}})


def test_shift_curves_and_the_uniform_guess():
    fig = plots.shift_curves(
        [0, 45, 90], {"bp": [0.02, 0.4, 0.8]}, {"bp": [0.1, 0.8, 1.2]}, "rotation (degrees)"
    )
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["backprop", "uniform guess"]
    close_figure(fig, axis_labels=True)
    with pytest.raises(ValueError, match="same methods"):
        plots.shift_curves([0], {"bp": [0.1]}, {"gbp": [0.1]}, "x")
    with pytest.raises(ValueError, match="2 values for 3 levels"):
        plots.shift_curves([0, 1, 2], {"bp": [0.1, 0.2]}, {"bp": [0.1, 0.2]}, "x")


def test_pruning_curves_mark_the_removable_fraction():
    curves = {"sparse_vd": {"fractions": [0.0, 0.9, 0.99, 1.0], "errors": [0.02, 0.02, 0.05, 0.9]}}
    fig = plots.pruning_curves(curves, {"sparse_vd": 0.95})
    assert "kept" in figure_text(fig)
    close_figure(fig, axis_labels=True)
    with pytest.raises(ValueError, match="2 fractions and 1 errors"):
        plots.pruning_curves({"bp": {"fractions": [0, 1], "errors": [0.1]}}, {})
