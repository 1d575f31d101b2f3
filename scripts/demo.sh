#!/usr/bin/env bash
# The main job end to end on the embedded default: local Ray, local MLflow store (SQLite), local disk, CPU FAISS.
# Run through `make demo`; every output lands under demo/ (delete it, or `make clean-demo`, to start over).
set -euo pipefail
OUT=${DEMO_DIR:-demo}
mkdir -p "$OUT"
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. synthetic archives (all-sky frames and seismic windows, labelled)"
[ -f "$OUT/aurora.zarr/zarr.json" ] || spacessl synth aurora "$OUT/aurora.zarr" --n 3000 --size 64 --seed 0
[ -f "$OUT/seismic.zarr/zarr.json" ] || spacessl synth seismic "$OUT/seismic.zarr" --n 3000 --seed 0
spacessl archive info "$OUT/aurora.zarr"
spacessl archive info "$OUT/seismic.zarr"
