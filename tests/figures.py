"""Shared helpers of the headless figure tests: Agg backend, no figure left open."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


@pytest.fixture(autouse=True)
def no_open_figures():
    """Imported by a test module, checks that none of its tests leaves a figure open."""
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a test left a figure open"


def figure_text(fig: Figure) -> str:
    """The suptitle and every axis label and title of a figure, joined."""
    parts = [fig.get_suptitle()]
    for ax in fig.axes:
        parts += [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()]
    return " ".join(p for p in parts if p)


def close_figure(fig, axis_labels: bool = False) -> None:
    """Check it is a Figure (optionally: every panel has both axis labels), render, close."""
    assert isinstance(fig, Figure)
    if axis_labels:
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), "every panel needs both axis labels"
    fig.canvas.draw()  # renders every artist (mathtext included) without a display
    plt.close(fig)
