"""Styling shared by the figure functions of every chapter: colours, array input, and sharp
figures in a notebook."""

from __future__ import annotations

import numpy as np
import torch

#: Colours used throughout: readable on a white figure in both light and dark page themes.
SPIKE_COLOUR = "tab:red"
SLAB_COLOUR = "tab:blue"
THEORY_COLOUR = "black"


def to_numpy(x) -> np.ndarray:
    """``x`` (a tensor, array or sequence) as a float64 NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def sharp_inline_figures() -> None:
    """In a Jupyter kernel, show figures as PNG at twice their pixel density ("retina"): sharp
    on high-density screens, in JupyterLab and in the built book alike. Elsewhere, nothing.
    :mod:`mfbook.plots` calls it on import, so every chapter that draws gets it."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with jupyter
        return
    if get_ipython() is None:
        return
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("retina")
