# Two commands on a fresh machine with Python 3.11+:  make demo  /  make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs notebooks bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fluxjax.demo $(ARGS)

test: lint
	$(BIN)/python -m pytest  # includes tests/test_docs.py: a strict docs build into a temp dir

lint: $(STAMP)
	$(BIN)/python -m ruff check fluxjax tests benchmarks notebooks docs
	$(BIN)/python -m ruff format --check fluxjax tests benchmarks notebooks docs

# The site, with warnings as errors, into site/ (offline: no web fonts, no plugins that fetch).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# Run every notebooks/NN_*.py and store it as an executed NN_*.ipynb.
notebooks: $(STAMP)
	$(BIN)/python -m notebooks.build $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]" torch==2.13.0
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache build site *.egg-info
