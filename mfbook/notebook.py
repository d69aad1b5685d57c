"""What the chapters need from their notebook environment, in one place (all chapters).

:func:`glue` keeps a value computed in a chapter for its prose, ``{glue:text}`NAME```: the book's
build (Jupyter Book, with ``myst_nb``) puts it into the text. Where ``myst_nb`` is not installed,
as on a hosted notebook service where only ``mfbook`` was installed, the chapter still runs: the
value is kept in :data:`GLUED`, where a reader can look it up by name.
"""

from __future__ import annotations

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
