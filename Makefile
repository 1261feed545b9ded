# Two commands on a fresh machine with Python 3.11+:  make demo  /  make test
# Every package they install has the version pinned in uv.lock; `make lock` regenerates it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
UV_STAMP := $(VENV)/.uv-$(UV_VERSION)
# Not in uv.lock: PyPI's Linux torch wheel pulls ~20 CUDA packages, gigabytes (README: Benchmarks).
TORCH_VERSION := 2.13.0

# uv installs into .venv and never downloads a Python of its own.
UV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(BIN)/uv
# --locked: stop if uv.lock is out of date with pyproject.toml; --inexact: keep uv, pip, torch.
SYNC := $(UV) sync --locked --inexact --extra test

.PHONY: demo test lint docs notebooks bench lock clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(UV_STAMP): | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	touch $(UV_STAMP)

# The locked versions of fluxjax's dependencies and extras; fluxjax itself in editable mode.
$(STAMP): pyproject.toml uv.lock $(UV_STAMP)
	$(SYNC) || { echo "(if uv.lock is out of date with pyproject.toml: make lock)" >&2; exit 1; }
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fluxjax.demo $(ARGS)

# pytest-xdist: JOBS worker processes (CI has 2 cores); each test file runs whole in one worker.
JOBS ?= 2
test: lint
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile  # includes a strict docs build (test_docs)

lint: $(STAMP)
	$(BIN)/python -m ruff check fluxjax tests benchmarks notebooks docs
	$(BIN)/python -m ruff format --check fluxjax tests benchmarks notebooks docs

# The site, with warnings as errors, into site/ (offline: no web fonts, no plugins that fetch).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# Run every notebooks/NN_*.py and store it as an executed NN_*.ipynb.
notebooks: $(STAMP)
	$(BIN)/python -m notebooks.build $(ARGS)

# torch through pip (it reads the machine's pip configuration, e.g. a CPU-only wheel or index),
# held to the lock's versions of every package the lock and torch share.
bench: $(STAMP)
	$(SYNC) --extra bench
	$(UV) export --locked --extra test --extra bench --no-emit-project --no-hashes \
		--quiet -o $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check \
		-c $(VENV)/constraints.txt torch==$(TORCH_VERSION)
	$(BIN)/python benchmarks/run.py

# uv.lock again from pyproject.toml, keeping the pins that still fit; upgrade with
# make lock ARGS=--upgrade  or  make lock ARGS="--upgrade-package ruff".
lock: $(UV_STAMP)
	$(UV) lock $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build site *.egg-info
