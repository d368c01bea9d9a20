#!/usr/bin/env bash
# `make test`: the deployment files validated offline (and a deliberately broken
# copy of them rejected), then the stack up (started when needed), every test of
# the workspace against it, in release mode so the demo's build is reused, and the
# container smoke (deploy/container/smoke.sh). Prints cargo's per-binary summaries
# and one total line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
t0=$SECONDS
bash deploy/validate.sh --with-selftest
bash deploy/local/stack.sh up
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
# Alert rules first: seconds, and no Kafka needed.
bash deploy/observability/check-rules.sh
# The previous release's binary, for the rolling-upgrade test (a few minutes
# the first time on a machine; nothing after).
if ! bash deploy/local/previous-release.sh; then
  echo "[test] the previous release did not build: tests/rolling_upgrade.rs will fail" >&2
fi
LOG=$(bash deploy/local/stack.sh logs-dir)/cargo-test.log
set +e
cargo test --release --locked --workspace --no-fail-fast 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
# Run what we ship: the image from the Dockerfile, its workers against the stack
# (a few minutes the first time on a machine, under one after: see
# deploy/container/smoke.sh). Counted as one more test.
bash deploy/container/smoke.sh 2>&1 | tee -a "$LOG"
smoke=${PIPESTATUS[0]}
set -e
if ((smoke != 0)); then status=$smoke; fi
passed=$(grep -Eo '[0-9]+ passed' "$LOG" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$LOG" | awk '{s+=$1} END {print s+0}')
if ((smoke == 0)); then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo
echo "[test] finished in $((SECONDS - t0))s; full log: $LOG"
echo "$passed passed, $failed failed"
exit "$status"
