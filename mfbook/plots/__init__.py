"""Figure functions of the book (chapters 1-7, 9-10). Thin: the numbers come from the science
modules.

Every function returns a :class:`matplotlib.figure.Figure` (white face, labelled axes with the
paper's symbols) and leaves showing or closing it to the caller; :func:`plot_decision_regions`
draws into a given axis and returns it. Figures use the constrained layout, so no layout warning
is raised. One module per part of the book, every name re-exported here (``plots.X``):

* :mod:`mfbook.plots.ensemble`: chapters 1-3 (the spike-and-slab ensemble, the central limit,
  gBP on the toy data);
* :mod:`mfbook.plots.mnist`: chapter 4 (training on MNIST);
* :mod:`mfbook.plots.credit`: chapter 5 (credit assignment: VIP, UIP and variable connections);
* :mod:`mfbook.plots.subnetworks`: chapters 6 and 7 (sub-networks, connections and limits);
* :mod:`mfbook.plots.temporal`: chapter 9 (recurrent networks);
* :mod:`mfbook.plots.relatives`: chapter 10 (gBP among its relatives).

Importing it in a notebook makes its figures sharp: PNG at twice the pixel density
(:func:`~mfbook.plots._style.sharp_inline_figures`).
"""

from mfbook.analysis import KIND_LABELS
from mfbook.plots._style import SLAB_COLOUR, SPIKE_COLOUR, THEORY_COLOUR, sharp_inline_figures
from mfbook.plots.credit import (
    CATEGORY_COLOURS,
    KIND_COLOURS,
    KIND_CONNECTIONS,
    error_strip,
    parameter_histograms,
    perturbation_panels,
    pixel_maps,
    receptive_fields,
    unit_counts,
)
from mfbook.plots.ensemble import (
    entropy_vs_pi,
    ks_vs_fan_in,
    plot_decision_regions,
    preactivation_histograms,
    sparsity_patterns,
    spike_slab_distribution,
)
from mfbook.plots.mnist import digit_grid, error_curves
from mfbook.plots.relatives import (
    METHOD_LABELS,
    pruning_curves,
    reliability_diagrams,
    shift_curves,
)
from mfbook.plots.subnetworks import (
    correlation_check,
    ensemble_error_vs_k,
    entropy_profiles,
    parameter_distributions,
    subnetwork_error_histogram,
)
from mfbook.plots.temporal import msi_training, symmetry_breaking

__all__ = [
    # colours (the names of the kinds of perturbation, KIND_LABELS, belong to mfbook.analysis)
    "SPIKE_COLOUR",
    "SLAB_COLOUR",
    "THEORY_COLOUR",
    "KIND_COLOURS",
    "KIND_LABELS",
    "KIND_CONNECTIONS",
    "CATEGORY_COLOURS",
    # chapters 1-3
    "spike_slab_distribution",
    "sparsity_patterns",
    "entropy_vs_pi",
    "preactivation_histograms",
    "ks_vs_fan_in",
    "plot_decision_regions",
    # chapter 4
    "digit_grid",
    "error_curves",
    # chapter 5
    "parameter_histograms",
    "pixel_maps",
    "unit_counts",
    "receptive_fields",
    "perturbation_panels",
    "error_strip",
    # chapters 6-7
    "subnetwork_error_histogram",
    "ensemble_error_vs_k",
    "entropy_profiles",
    "parameter_distributions",
    "correlation_check",
    # chapter 9
    "msi_training",
    "symmetry_breaking",
    # chapter 10
    "METHOD_LABELS",
    "reliability_diagrams",
    "shift_curves",
    "pruning_curves",
]

sharp_inline_figures()
