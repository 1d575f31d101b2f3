#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one go, on a machine with CUDA (at most 23 minutes, its time limits):
# the CUDA-only tests, the views' operator calls and time, what step logging costs, and train_throughput for
# windows (1 and 2 loader processes) and all-sky frames at 256 px, each with and without Ray Train.
#
#     bash benchmarks/gpu.sh [LOG_DIR]          # default out/gpu; PYTHON=... picks the interpreter
#
# Each command's whole output goes to LOG_DIR/NAME.log; the lines that carry the figures are printed as it runs.
# A command that fails or runs past its time limit is reported and the next one runs.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
LOG=${1:-out/gpu}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0 TQDM_DISABLE=1

if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "benchmarks/gpu.sh: torch sees no CUDA device here ($PY); run it on a GPU machine" >&2
    exit 2
fi
nvidia-smi -L 2>/dev/null || true

run() {  # NAME LIMIT_S COMMAND...
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    timeout "$limit" "$@" > "$LOG/$name.log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $(( $(date +%s) - start )) s ($LOG/$name.log)"
    grep -E "^\(|goal|ratio|machine|data path|skipped|passed|failed|^image|^waveform" "$LOG/$name.log" | grep -v "^$"
    [ "$rc" -ne 0 ] && tail -n 5 "$LOG/$name.log"
    return 0
}

TT="$PY benchmarks/train_throughput.py --device cuda"
run cuda_tests 300 $PY -m pytest -q -m gpu
run views 120 $PY benchmarks/views.py --device cuda --batch 256
run step_log 180 $PY benchmarks/step_log.py --device cuda
run windows_p1 240 $TT --config configs/icequake_simclr.yaml --warmup 10 --steps 100 --n 28160
run windows_p2 240 $TT --config configs/icequake_simclr.yaml --warmup 10 --steps 100 --n 28160 \
    --set runtime.reader_processes=2
run frames_256 300 $TT --config configs/oath_simclr.yaml --set data.input_size=256 --warmup 5 --steps 30 --n 8960
