#!/usr/bin/env bash
# The main job: stack up, release build, topics + schemas, workers started,
# a realistic auction workload sent, read model checked against the pure domain.
# Extra arguments go to `gavel demo-load` (e.g. --auctions 500 --bids 20000).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
t0=$SECONDS
bash deploy/local/stack.sh up
bash deploy/local/build.sh
GAVEL=$ROOT/target/release/gavel
LOGS=$(bash deploy/local/stack.sh logs-dir)/demo
mkdir -p "$LOGS"

"$GAVEL" topics create
"$GAVEL" schemas register --dir schemas >"$LOGS/schemas.log"
echo "[demo] schemas registered ($(wc -l <"$LOGS/schemas.log") subjects)"

pids=()
stop_workers() {
  # SIGTERM: each worker finishes its in-flight batch, commits and exits.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_workers EXIT
GAVEL_INSTANCE_ID=demo-0 "$GAVEL" aggregate >"$LOGS/aggregate.log" 2>&1 &
pids+=($!)
"$GAVEL" sink >"$LOGS/sink.log" 2>&1 &
pids+=($!)
echo "[demo] workers started (aggregate pid ${pids[0]}, sink pid ${pids[1]}); logs in $LOGS"

"$GAVEL" demo-load "$@"
echo "[demo] done in $((SECONDS - t0))s (stack left running: make stack-down stops it)"
