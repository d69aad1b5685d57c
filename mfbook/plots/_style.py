"""Styling shared by the figure functions of every chapter: colours and array input."""

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
