# Every target creates .venv when missing and installs what it needs from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONHASHSEED := 0

.PHONY: test test-fast demo bench clean

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

test: $(VENV)/.stamp-dev
	$(PY) -m pytest -q

test-fast: $(VENV)/.stamp-dev
	$(PY) -m pytest -q -m "not slow"

demo: $(VENV)/.stamp-dev
	$(PY) -m jaxnet.demo

bench: $(VENV)/.stamp-bench
	$(PY) benchmarks/run_cpu.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
