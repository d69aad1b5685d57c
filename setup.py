"""Build hook for the wheel: it carries the stored results of ``book/results`` as
``mfbook/_results``, so that an installed package (a reader on Colab or Binder, a course's
JupyterHub) finds them without the repository; ``mfbook.reproduce.results_dir`` looks there
last. Everything else about the package is in ``pyproject.toml``."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESULTS = Path(__file__).resolve().parent / "book" / "results"


class BuildPyWithResults(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:  # an editable install reads book/results in place
            shutil.copytree(
                RESULTS,
                Path(self.build_lib) / "mfbook" / "_results",
                ignore=shutil.ignore_patterns(".*", "*.tmp"),
                dirs_exist_ok=True,
            )


setup(cmdclass={"build_py": BuildPyWithResults})
