#!/usr/bin/env bash
# Run what we ship: build the image with podman from the project's Dockerfile
# (target `prebuilt`: target/release/gavel as built on this host, since
# Debian's rustc is too old for the builder stage), on a Debian bookworm base image made here by
# mmdebstrap + `podman import` (no image registry is reachable), then run
# aggregate, projector, view sink, event store, query API and command API as
# containers (uid 10001, read-only root filesystem, the Dockerfile's
# HEALTHCHECK passing) against the local stack on a private pipeline, drive a
# few commands through the command API, check the read model through the
# query API, print the image size, and remove everything it made but the
# cached base image.
#
# Usage: deploy/container/smoke.sh        (make container-smoke)
#
# podman settings that work here (root, no systemd, cgroup v1):
#   --runtime runc --cgroup-manager cgroupfs   crun/systemd are not usable
#   --ulimit nofile=N:N --ulimit nproc=N:N     explicit, within this shell's hard
#                                              limits: the defaults try to raise
#                                              them and are refused
#   --network host                             workers reach 127.0.0.1:9092 etc.
#   build --format docker                      OCI images drop HEALTHCHECK
# Environment: GAVEL_CACHE ($HOME/.cache/gavel) keeps the base image tarball;
# GAVEL_SMOKE_KEEP_IMAGE=1 keeps the built image.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${GAVEL_CACHE:-$HOME/.cache/gavel}/container
BASE_IMAGE=docker.io/library/debian:bookworm-slim
IMAGE=localhost/gavel:smoke
RUN_ID=smoke$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
# At most what this shell may have: asking for more is refused.
NOFILE=$(ulimit -Hn); NOFILE=$((NOFILE > 16384 ? 16384 : NOFILE))
LIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=4096:4096)
REGISTRY_URL=${GAVEL_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}
POSTGRES_URL=${GAVEL_POSTGRES_URL:-postgres://gavel:gavel@127.0.0.1:5432/gavel}
WORK=$(mktemp -d)
CONTAINERS=()

log() { printf '== %s\n' "$*"; }
fail() { printf 'SMOKE FAILED: %s\n' "$*" >&2; exit 1; }

install_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v runc >/dev/null || missing+=(runc)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

base_image() {
  if "${PODMAN[@]}" image exists "$BASE_IMAGE"; then return; fi
  mkdir -p "$CACHE"
  if [[ ! -f $CACHE/bookworm-minbase.tar || ! -s $CACHE/bookworm-minbase.tar ]]; then
    log "making the bookworm base image with mmdebstrap (once; cached in $CACHE)"
    # Whatever an interrupted or older run left (mmdebstrap 1.3.5 made a
    # directory of a target with an unknown extension such as .part).
    rm -rf "$CACHE/bookworm-minbase.tar" "$CACHE/bookworm-minbase.tar.part"
    mmdebstrap --variant=minbase --format=tar --quiet bookworm "$CACHE/bookworm-minbase.tar.part"
    mv "$CACHE/bookworm-minbase.tar.part" "$CACHE/bookworm-minbase.tar"
  fi
  "${PODMAN[@]}" import "$CACHE/bookworm-minbase.tar" "$BASE_IMAGE" >/dev/null
}

build_image() {
  # The binary this checkout built (`make build`, or `make test`'s cargo test run):
  # building it again here with other features would recompile half the tree.
  [[ -x $ROOT/target/release/gavel ]] || fail "no target/release/gavel: run \`make build\` first"
  # A context of exactly what the `prebuilt` target copies.
  mkdir -p "$WORK/context/target/release"
  cp "$ROOT/Dockerfile" "$WORK/context/"
  cp -r "$ROOT/schemas" "$WORK/context/"
  cp "$ROOT/target/release/gavel" "$WORK/context/target/release/"
  log "building $IMAGE from the Dockerfile (target prebuilt)"
  "${PODMAN[@]}" build --quiet --format docker --pull=never --network host "${LIMITS[@]}" \
    --target prebuilt -t "$IMAGE" "$WORK/context" >/dev/null
  local bytes
  bytes=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
  log "image $IMAGE: $((bytes / 1024 / 1024)) MiB"
}

# The settings of a private pipeline: topics, groups and Postgres schema of its own.
write_env() {
  cat >"$WORK/env" <<EOF
GAVEL_REGISTRY_URL=$REGISTRY_URL
GAVEL_POSTGRES_URL=$POSTGRES_URL
GAVEL_POSTGRES_SCHEMA=$RUN_ID
GAVEL_OUTBOX_SCHEMA=${RUN_ID}_outbox
GAVEL_PARTITIONS=2
GAVEL_TOPIC_COMMANDS=$RUN_ID.auction.commands
GAVEL_TOPIC_EVENTS=$RUN_ID.auction.events
GAVEL_TOPIC_OUTCOMES=$RUN_ID.auction.outcomes
GAVEL_TOPIC_CHANGELOG=$RUN_ID.auction.state-changelog
GAVEL_TOPIC_VIEW_DETAILS=$RUN_ID.view.auction_details
GAVEL_TOPIC_VIEW_LIST=$RUN_ID.view.auction_list
GAVEL_TOPIC_VIEW_USER_BIDS=$RUN_ID.view.user_bids
GAVEL_TOPIC_ORDERS=$RUN_ID.order.events
GAVEL_TOPIC_SAGA_PREFIX=$RUN_ID.saga
GAVEL_AGGREGATE_GROUP=$RUN_ID-aggregate
GAVEL_PROJECT_GROUP=$RUN_ID-project
GAVEL_SINK_GROUP=$RUN_ID-sink
GAVEL_SAGA_GROUP=$RUN_ID-saga
EOF
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# gavel <args> in a container: one-shot (--rm) or, with a name, a detached worker.
run_gavel() {
  local name=$1; shift
  local mode=(--rm)
  if [[ -n $name ]]; then mode=(-d --name "$RUN_ID-$name"); CONTAINERS+=("$RUN_ID-$name"); fi
  "${PODMAN[@]}" run "${mode[@]}" --network host "${LIMITS[@]}" --read-only \
    --cap-drop all --security-opt no-new-privileges --env-file "$WORK/env" \
    -e "GAVEL_INSTANCE_ID=$RUN_ID-${name:-init}" -e "GAVEL_METRICS_ADDR=127.0.0.1:${METRICS_PORT:-0}" \
    "$IMAGE" "$@"
}

start_worker() {
  local name=$1; shift
  # podman says on stderr that it cannot schedule healthcheck timers without
  # systemd; wait_healthy runs the check itself.
  METRICS_PORT=$(free_port) run_gavel "$name" "$@" >/dev/null 2>>"$WORK/podman.err"
}

# Healthy by the image's own HEALTHCHECK (run on demand: no systemd timers here).
wait_healthy() {
  local name=$RUN_ID-$1
  for _ in $(seq 1 90); do
    if "${PODMAN[@]}" healthcheck run "$name" >/dev/null 2>&1; then
      log "$1: healthy"
      return
    fi
    sleep 1
  done
  "${PODMAN[@]}" logs --tail 30 "$name" >&2 || true
  fail "$1 not healthy within 90 s"
}

check_hardening() {
  local name=$RUN_ID-$1
  local uid
  uid=$("${PODMAN[@]}" exec "$name" id -u)
  [[ $uid == 10001 ]] || fail "$1 runs as uid $uid, not 10001"
  if "${PODMAN[@]}" exec "$name" touch /opt/gavel/written 2>/dev/null; then
    fail "$1: the root filesystem is writable"
  fi
}

token() {
  python3 - "$1" <<'EOF'
import base64, hashlib, hmac, json, os, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": sys.argv[1], "tenant": "smoke", "exp": int(time.time()) + 600}).encode())
key = os.environ.get("GAVEL_JWT_SECRET", "local-development-only").encode()
sig = b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
EOF
}

# POST to the command API; fails the smoke unless the status is $1.
post() {
  local want=$1 user=$2 path=$3 body=$4 status
  status=$(curl -s -o "$WORK/answer" -w '%{http_code}' -X POST "http://$COMMAND_API$path" \
    -H "Authorization: Bearer $(token "$user")" -H 'Content-Type: application/json' -d "$body")
  [[ $status == "$want" ]] || fail "POST $path: HTTP $status, wanted $want: $(cat "$WORK/answer")"
}

drive_workload() {
  local id=lot-$RUN_ID
  post 201 sam /auctions \
    "{\"auction_id\":\"$id\",\"title\":\"Bronze Hare\",\"currency\":\"EUR\",\"starting_price\":10000,\"min_increment\":500,\"ends_in_secs\":600}"
  post 200 sam "/auctions/$id/start" ''
  post 200 ann "/auctions/$id/bids" '{"amount":10000,"currency":"EUR"}'
  post 200 bob "/auctions/$id/bids" '{"amount":10500,"currency":"EUR"}'
  post 409 ann "/auctions/$id/bids" '{"amount":10500,"currency":"EUR"}'
  log "command API: created, started, two bids accepted, one refused by the rules"
  for _ in $(seq 1 60); do
    if curl -sf -H "Authorization: Bearer $(token ann)" "http://$QUERY_API/auctions/$id" >"$WORK/row" 2>/dev/null \
      && python3 - "$WORK/row" <<'EOF'
import json, sys
row = json.load(open(sys.argv[1]))
ok = row.get("bid_count") == 2 and row.get("leading_bidder") == "bob" and row.get("status") == "ACTIVE"
sys.exit(0 if ok else 1)
EOF
    then
      log "query API: auction $id has 2 bids, bob leading: the read model is right"
      return
    fi
    sleep 1
  done
  fail "the read model never showed the two bids: $(cat "$WORK/row" 2>/dev/null)"
}

cleanup() {
  local status=$?
  set +e
  if ((status != 0)) && [[ -f $WORK/podman.err ]]; then
    grep -v 'systemd connection' "$WORK/podman.err" >&2
  fi
  for name in "${CONTAINERS[@]}"; do
    if ((status != 0)); then "${PODMAN[@]}" logs --tail 20 "$name" >&2 2>&1; fi
    "${PODMAN[@]}" stop -t 15 "$name" >/dev/null 2>&1
    "${PODMAN[@]}" rm -f "$name" >/dev/null 2>&1
  done
  if [[ -f $WORK/env ]] && "${PODMAN[@]}" image exists "$IMAGE"; then
    run_gavel "" topics delete --yes >/dev/null 2>&1
  fi
  psql -q "$POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $RUN_ID CASCADE; DROP SCHEMA IF EXISTS ${RUN_ID}_outbox CASCADE" >/dev/null 2>&1
  for subject in $(curl -sf "$REGISTRY_URL/subjects" | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)))' | grep "^$RUN_ID\."); do
    curl -sf -X DELETE "$REGISTRY_URL/subjects/$subject" >/dev/null
    curl -sf -X DELETE "$REGISTRY_URL/subjects/$subject?permanent=true" >/dev/null
  done
  if [[ ${GAVEL_SMOKE_KEEP_IMAGE:-0} != 1 ]]; then "${PODMAN[@]}" rmi -f "$IMAGE" >/dev/null 2>&1; fi
  rm -rf "$WORK"
  exit "$status"
}

main() {
  install_tools
  trap cleanup EXIT
  base_image
  build_image
  write_env
  log "pipeline $RUN_ID: topics, schemas and migrations (one-shot containers)"
  run_gavel "" topics create >/dev/null 2>>"$WORK/podman.err"
  run_gavel "" schemas check >/dev/null 2>>"$WORK/podman.err"
  run_gavel "" schemas register >/dev/null 2>>"$WORK/podman.err"
  run_gavel "" migrate >/dev/null 2>>"$WORK/podman.err"
  COMMAND_API=127.0.0.1:$(free_port)
  QUERY_API=127.0.0.1:$(free_port)
  start_worker aggregate aggregate
  start_worker project project
  start_worker sink sink
  start_worker event-store event-store
  start_worker query-api query-api --listen "$QUERY_API"
  start_worker command-api command-api --listen "$COMMAND_API"
  for role in aggregate project sink event-store query-api command-api; do
    wait_healthy "$role"
    check_hardening "$role"
  done
  log "every container: uid 10001, read-only root filesystem"
  drive_workload
  log "container smoke passed"
}

main "$@"
