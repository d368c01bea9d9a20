#!/usr/bin/env bash
# Builds the release binary (and, with --tests, the test binaries) once; every
# other script reuses target/release. Build prerequisites are installed by
# `stack.sh up` (Debian packages) before this runs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "[build] ERROR: cargo not found; install Rust (rustup) first" >&2; exit 1; }
t0=$SECONDS
cargo build --release --locked --bin gavel
echo "[build] release binary ready in $((SECONDS - t0))s: target/release/gavel"
