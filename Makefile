# The two commands a new user runs (see README.md):
#   make demo   -- create .venv, install jflows, run the main demo (experiments/maf_demo: a MAF
#                  vs a Gaussian on the committed real MINIBOONE sample), write runs/maf_demo/
#   make test   -- create .venv, install jflows with dev extras, run the test suite
# Also: make intro (the bijectors introduction, experiments/bijectors_intro, synthetic 2-D
# data), make test-slow, make bench, make lint.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --constraint constraints.txt
PYTEST_ARGS ?=

.PHONY: demo intro test test-slow bench lint clean install install-dev

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "jflows needs Python >= 3.11, got " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e ".[dev,bench,data,interop]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(PY) -m experiments.maf_demo --out runs/maf_demo

intro: install
	$(PY) -m experiments.bijectors_intro --out runs/bijectors_intro

test: install-dev
	$(PY) -m pytest -n auto --maxprocesses 4 $(PYTEST_ARGS)

test-slow: install-dev
	$(PY) -m pytest -m slow -n auto --maxprocesses 4 $(PYTEST_ARGS)

bench: install-dev
	$(PY) -m benchmarks.elementwise_chain
	$(PY) -m benchmarks.maf
	$(PY) -m benchmarks.maf_sampling
	$(PY) -m benchmarks.ffjord
	$(PY) -m benchmarks.train
	$(PY) -m benchmarks.pixelcnn

lint: install-dev
	$(PY) -m ruff check jflows tests experiments benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
