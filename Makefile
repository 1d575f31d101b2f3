# Set-up and entry points. Every target creates .venv when it is missing and installs into it only when
# pyproject.toml changed, so running them again is cheap.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean-demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Runs the main job end to end on the embedded default (local Ray, local MLflow store, local disk, CPU FAISS).
demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

## Installs what the tests need and runs the whole suite.
test: install
	$(PY) -m pytest

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-demo:
	rm -rf demo
