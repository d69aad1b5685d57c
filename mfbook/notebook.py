"""What the chapters need from their notebook environment, in one place (all chapters).

:func:`glue` keeps a value computed in a chapter for its prose, ``{glue:text}`NAME```: the book's
build (Jupyter Book, with ``myst_nb``) puts it into the text. Where ``myst_nb`` is not installed,
as on a hosted notebook service where only ``mfbook`` was installed, the chapter still runs: the
value is kept in :data:`GLUED`, where a reader can look it up by name. :func:`mean_sd` and
:func:`pm` summarise a number measured over several seeds, as the chapters' tables print it.
"""

from __future__ import annotations

import numpy as np

#: name -> value of every glue() call of this kernel (also when myst_nb does the gluing)
GLUED: dict[str, object] = {}


def glue(name: str, value, display: bool = True) -> None:
    """Keep ``value`` under ``name`` for the chapter's prose (``myst_nb.glue`` where installed)."""
    GLUED[name] = value
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=display)


def mean_sd(values) -> tuple[float, float]:
    """(mean, standard deviation) of ``values`` (over seeds), as plain floats."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_sd needs at least one value")
    return float(v.mean()), float(v.std())


def pm(values, scale: float = 100, digits: int = 2) -> str:
    """ "mean ± sd" of ``values`` times ``scale`` (percent by default); one value: the value
    alone."""
    m, s = mean_sd(values)
    if np.asarray(values).size == 1:
        return f"{scale * m:.{digits}f}"
    return f"{scale * m:.{digits}f} ± {scale * s:.{digits}f}"
