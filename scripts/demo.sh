#!/usr/bin/env bash
# The main job end to end on the embedded default: local Ray, local MLflow store (SQLite), local disk, CPU FAISS.
#   synth → ingest → train → embed → index → query, for all-sky frames and for seismic waveforms.
# Run through `make demo`; every output lands under demo/. Finished steps are skipped when it runs again
# (delete demo/, or `make clean-demo`, to start over). About 4-10 minutes on 2 cores.
set -euo pipefail
OUT=${DEMO_DIR:-demo}
mkdir -p "$OUT/.done"
OUT_ABS=$(cd "$OUT" && pwd)
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} TQDM_MININTERVAL=2
TRACKING="sqlite:///$OUT_ABS/mlflow.db"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# run NAME CMD...: run CMD once; a stamp under $OUT/.done marks it finished (an interrupted step resumes)
run() { local name=$1; shift; if [ -f "$OUT/.done/$name" ]; then echo "($name: done before)"; else "$@"; touch "$OUT/.done/$name"; fi; }

step "1. synthetic archives: labelled all-sky frames and seismic windows, and a day of continuous records from two stations"
run synth-aurora spacessl synth aurora "$OUT/aurora.zarr" --n 3000 --size 64 --seed 0
run synth-seismic spacessl synth seismic "$OUT/seismic.zarr" --n 3000 --seed 0
run synth-continuous spacessl synth continuous "$OUT/continuous" --stations 2 --days 1 --seed 0
spacessl archive info "$OUT/aurora.zarr"
spacessl archive info "$OUT/seismic.zarr"

step "2. ingest: STA/LTA event windows out of the continuous miniSEED, labelled from the truth catalog"
run ingest-events spacessl ingest waveforms "$OUT"/continuous/*.mseed "$OUT/events.zarr" \
    --labels "$OUT/continuous/catalog.csv" --coincidence 2
spacessl archive info "$OUT/events.zarr"

step "3. train: SimCLR on Ray Train (local Ray, CPU), tracked and registered in MLflow ($TRACKING)"
run train-aurora spacessl train --config configs/demo_aurora.yaml --overwrite \
    data.archive="$OUT/aurora.zarr" runtime.output_dir="$OUT" runtime.storage_path="$OUT_ABS/runs" tracking.uri="$TRACKING"
run train-seismic spacessl train --config configs/demo_seismic.yaml --overwrite \
    data.archive="$OUT/seismic.zarr" runtime.output_dir="$OUT" runtime.storage_path="$OUT_ABS/runs" tracking.uri="$TRACKING"
spacessl runs --tracking-uri "$TRACKING"

step "4. embed: every sample through the registered encoders (Ray actors) into embeddings stores"
run embed-aurora spacessl embed --model models:/demo-aurora@current --tracking-uri "$TRACKING" \
    --archive "$OUT/aurora.zarr" --out "$OUT/aurora.emb.zarr"
run embed-events spacessl embed --model models:/demo-seismic@current --tracking-uri "$TRACKING" \
    --archive "$OUT/events.zarr" --out "$OUT/events.emb.zarr"

step "5. index: sharded FAISS indexes, type and parameters chosen from N, D and memory, tuned to recall@10 >= 0.95"
run index-aurora spacessl index build "$OUT/aurora.emb.zarr" --out "$OUT/aurora.idx"
run index-events spacessl index build "$OUT/events.emb.zarr" --out "$OUT/events.idx"
spacessl index info "$OUT/aurora.idx"

step "6. query: the frames most like frame 0, one per camera within 30 s; the events most like event 0"
spacessl query "$OUT/aurora.idx" --id 0 -k 12 --dedup 30s --gallery "$OUT/aurora.query.png" --overwrite
spacessl query "$OUT/events.idx" --id 0 -k 8 --dedup 60s --gallery "$OUT/events.query.png" --overwrite

step "done"
echo "galleries:   $OUT/aurora.query.png  $OUT/events.query.png"
echo "experiments: mlflow ui --backend-store-uri $TRACKING   (then open http://127.0.0.1:5000)"
echo "web gallery: spacessl serve $OUT/aurora.idx            (then open http://127.0.0.1:8000)"
