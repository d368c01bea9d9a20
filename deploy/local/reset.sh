#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Stop the local stack and delete its data, logs and pid files ($GAVEL_STACK_DIR).
# The download cache ($GAVEL_CACHE: Kafka jars, Apicurio app) is kept.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$HERE/stack.sh" down
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
case $GAVEL_STACK_DIR in
  "" | / | "$HOME" | "$HOME/") die "refusing to delete GAVEL_STACK_DIR='$GAVEL_STACK_DIR'" ;;
esac
if [[ -d $GAVEL_STACK_DIR ]]; then
  log "deleting $GAVEL_STACK_DIR"
  rm -rf -- "$GAVEL_STACK_DIR"
fi
log "reset done; run deploy/local/stack.sh up for a fresh stack"
