"""Figure functions of chapter 9, headless."""

import numpy as np
import pytest
from figures import close_figure, figure_text, no_open_figures  # noqa: F401 (autouse fixture)

from mfbook import plots


def test_msi_training_draws_losses_and_psychometric_curves():
    curves = np.tile(np.linspace(0, 1, 8), (2, 3, 1))
    fig = plots.msi_training([[0.1, 0.05, 0.01], [0.2, 0.02]], curves, range(9, 17), 12.5)
    assert "frequency" in figure_text(fig) and "squared error" in figure_text(fig)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels[:3] == ["visual", "auditory", "both"]
    close_figure(fig, axis_labels=True)
    with pytest.raises(ValueError, match="curves must be"):
        plots.msi_training([[0.1]], np.zeros((2, 3, 5)), range(9, 17), 12.5)


def test_symmetry_breaking_marks_the_level():
    fig = plots.symmetry_breaking(
        [0, 5, 10], {"pi left 0": [[0, 0.2, 0.5]], "xi at 0": [[0, 0.01, 0.02]]}, 0.1
    )
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["pi left 0", "xi at 0", "10% level"]
    close_figure(fig, axis_labels=True)
