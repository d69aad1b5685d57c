"""mfbook.notebook.glue: the chapters run where myst_nb is not installed (a hosted notebook
with only mfbook), keeping their values; with myst_nb, it glues as before."""

import pytest
from conftest import run_python

from mfbook import notebook


def test_glue_keeps_values_without_myst_nb():
    code = """
        import sys
        sys.modules["myst_nb"] = None  # as if it were not installed: importing it fails
        from mfbook.notebook import GLUED, glue
        glue("ch0-x", 3.5, display=False)
        print(GLUED)
    """
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'ch0-x': 3.5}"


def test_glue_hands_the_value_to_myst_nb(monkeypatch):
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda *a, **k: calls.append((a, k)))
    notebook.glue("ch0-y", 2, display=False)
    assert calls == [(("ch0-y", 2), {"display": False})]
    assert notebook.GLUED["ch0-y"] == 2


def test_pm_formats_a_mean_and_sd_over_seeds():
    mean_sd, pm = notebook.mean_sd, notebook.pm
    assert mean_sd([1, 3]) == (2.0, 1.0)
    assert pm([0.01, 0.03]) == "2.00 ± 1.00"
    assert pm([2, 4], scale=1, digits=1) == "3.0 ± 1.0"
    assert pm([0.0133]) == "1.33"  # one seed: no spread to show
    with pytest.raises(ValueError, match="at least one value"):
        pm([])
