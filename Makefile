# Every target creates .venv when missing and installs what it needs from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONHASHSEED := 0

.PHONY: test test-fast lint demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# A stamp per extra set, rebuilt whenever pyproject.toml changes.
$(VENV)/.stamp-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.stamp-bench: pyproject.toml $(VENV)/.stamp-dev
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $@

# -n auto: one pytest-xdist worker per core; every test is independent of the others' order and state.
test: $(VENV)/.stamp-dev
	$(PY) -m pytest -q -n auto

test-fast: $(VENV)/.stamp-dev
	$(PY) -m pytest -q -n auto -m "not slow"

# The linter, the formatter (check only) and the type checker; each configured in pyproject.toml.
lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The digits demo's settings; tests/test_cli.py reads this line and checks >= 98% test accuracy.
DEMO_ARGS := --data digits --hidden 256,128 --activation relu --batchnorm --dropout 0.2 --optimizer adam \
	--lr 1e-3 --schedule cosine --epochs 40 --batch-size 32 --normalize none \
	--augment rotation:0.1,stretch:1.1,shear:0.1 --seed 0

demo: $(VENV)/.stamp-dev
	$(PY) -m jaxnet.demo
	$(VENV)/bin/jaxnet train $(DEMO_ARGS) --out runs/demo

$(VENV)/.stamp-docs: pyproject.toml $(VENV)/.stamp-dev
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	touch $@

bench: $(VENV)/.stamp-bench
	$(PY) benchmarks/run_cpu.py

# The site, offline, into docs/_build/html, read afresh (-E) so that every warning (a broken reference,
# a public name without a docstring) shows and fails the build (-W; -n: every jaxnet reference must resolve).
.PHONY: docs
docs: $(VENV)/.stamp-docs
	$(PY) -m sphinx -b html -E -W --keep-going -n -q docs docs/_build/html

# The chapter's figures and claims on one page: out/tour/index.html (matplotlib comes with the dev extra).
.PHONY: tour
tour: $(VENV)/.stamp-dev
	$(VENV)/bin/jaxnet tour --out out/tour

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/api
