"""An nbgrader course folder made from the masters, for courses that grade with nbgrader.

The masters in ``book/assignments/master/`` use nbgrader's syntax, so nbgrader (0.9.6, the
``nbgrader`` extra) runs them unmodified. :func:`nbgrader_course` lays out the folder nbgrader
expects: ``source/<assignment>/<assignment>.ipynb`` (a copy of each master, byte for byte) and a
minimal ``nbgrader_config.py``. nbgrader then does the rest, in that folder, with the project's
environment active (nbgrader calls ``alembic`` by name, so the environment's ``bin`` must be on
``PATH``):

    nbgrader generate_assignment 01_spike_slab   # release/: the student version
    nbgrader autograde 01_spike_slab             # grades submitted/<student>/01_spike_slab/
    nbgrader export                              # grades.csv, from the gradebook
"""

from __future__ import annotations

from pathlib import Path

from mfbook._student_version import MASTERS
from mfbook.io import atomic_write

CONFIG = '''\
"""nbgrader's configuration for the mfbook course (written by `python -m mfbook assign
nbgrader-course`; edit freely, it is not overwritten)."""

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "mfbook"
# The course folder is the folder nbgrader runs in; the gradebook is gradebook.db there.
# As the built-in grader: a cell runs 120 s at most.
c.Execute.timeout = 120
'''


def nbgrader_course(folder, masters_dir=MASTERS, assignments=None) -> list[Path]:
    """Lay out an nbgrader course in ``folder`` from the masters; return the files written.

    Every master (or those named in ``assignments``, by stem) is copied, unchanged, to
    ``folder/source/<name>/<name>.ipynb``, replacing an older copy. ``nbgrader_config.py`` is
    written only if the folder has none, so an instructor's edits stay.
    """
    masters = sorted(Path(masters_dir).glob("*.ipynb"))
    if assignments is not None:
        unknown = set(assignments) - {m.stem for m in masters}
        if unknown:
            raise ValueError(f"no such master: {', '.join(sorted(unknown))}")
        masters = [m for m in masters if m.stem in set(assignments)]
    if not masters:
        raise FileNotFoundError(f"no master notebooks in {masters_dir}")
    folder = Path(folder)
    written = [atomic_write(folder / "source" / m.stem / m.name, m.read_bytes()) for m in masters]
    config = folder / "nbgrader_config.py"
    if not config.exists():
        written.append(atomic_write(config, CONFIG))
    return written
