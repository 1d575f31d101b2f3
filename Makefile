# Set-up and entry points. Every target creates .venv when it is missing and installs into it only when
# pyproject.toml changed, so running them again is cheap.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser demo test bench bench-gpu clean-demo

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Debian's Chromium for the browser test of the query service (skipped with a warning where it cannot be installed).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium for the browser test"; \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { $(SUDO) apt-get update -q >/dev/null 2>&1 && \
	      $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; } || \
	  echo "warning: chromium could not be installed; the browser test will be skipped"

## Runs the main job end to end on the embedded default (local Ray, local MLflow store, local disk, CPU FAISS).
demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

## Installs what the tests need and runs the whole suite.
test: install browser
	$(PY) -m pytest

## Every benchmark with its defaults; those that read a quality run's output run after benchmarks/quality.py.
AFTER_QUALITY := benchmarks/embedding_variants.py benchmarks/kmeans_restarts.py benchmarks/split_spread.py
bench: install
	@for b in $(filter-out $(AFTER_QUALITY),$(wildcard benchmarks/*.py)); do echo "== $$b"; $(PY) $$b || exit 1; done
	@echo "== benchmarks/split_spread.py"; $(PY) benchmarks/split_spread.py out/quality/aurora.emb.zarr out/quality/seismic.emb.zarr
	@echo "== benchmarks/embedding_variants.py"; $(PY) benchmarks/embedding_variants.py out/quality
	@echo "== benchmarks/kmeans_restarts.py"; $(PY) benchmarks/kmeans_restarts.py out/quality/seismic.emb.zarr

## The GPU figures of docs/benchmarks.md (needs CUDA).
bench-gpu: install
	PYTHON=$(PY) bash benchmarks/gpu.sh

clean-demo:
	rm -rf demo
