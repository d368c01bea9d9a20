#!/usr/bin/env bash
# Checks and unit-tests the Prometheus rules with promtool (deploy/local/test.sh runs it).
# promtool comes from Debian's `prometheus` package: unpacked into the cache rather
# than installed, so no Prometheus server is set up or started as a side effect.
# Idempotent: a promtool on PATH or in the cache is used as it is.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${GAVEL_CACHE:-$HOME/.cache/gavel}/promtool
log() { printf '[rules] %s\n' "$*" >&2; }

find_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    command -v promtool
  elif [[ -x $CACHE/usr/bin/promtool ]]; then
    echo "$CACHE/usr/bin/promtool"
  else
    return 1
  fi
}

fetch_promtool() {
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  log "fetching promtool (Debian package prometheus) into $CACHE"
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    [[ $(id -u) -eq 0 ]] || { log "run 'apt-get update' as root first"; return 1; }
    apt-get update >/dev/null
    (cd "$tmp" && apt-get download prometheus >/dev/null)
  fi
  mkdir -p "$CACHE"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$CACHE"
}

PROMTOOL=$(find_promtool || { fetch_promtool && find_promtool; })
cd "$HERE/prometheus"
"$PROMTOOL" check rules rules.yml
"$PROMTOOL" test rules rules_test.yml
log "alert and recording rules pass their tests"
