#!/usr/bin/env bash
# The main job: stack up, release build, each role's Kafka user and ACLs, topics +
# schemas + migrations, workers started (each with its own credentials: Kafka over
# SASL_SSL, Postgres over TLS, the registry through its TLS proxy), a realistic auction
# workload sent, read model checked against the pure domain.
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

CREDENTIALS=$(bash deploy/local/stack.sh credentials-dir)
# `gavel <args>` as role $1, with that role's credentials file (deploy/local/lib/access.sh),
# which says where and how to connect: addresses in the environment would override it.
as_role() {
  local role=$1
  shift
  env -u GAVEL_KAFKA_BOOTSTRAP -u GAVEL_POSTGRES_URL -u GAVEL_REGISTRY_URL \
    GAVEL_CONFIG="$CREDENTIALS/$role.env" "$GAVEL" "$@"
}
# Users and ACLs need the cluster's admin: the plain listener's super user, as every tool here.
"$GAVEL" access apply --credentials "$CREDENTIALS" >"$LOGS/access.log"
echo "[demo] Kafka users and ACLs of $(wc -l <"$LOGS/access.log") roles applied (deploy/access.txt)"
as_role init topics create
as_role init schemas check --dir schemas >"$LOGS/schemas-check.log"
as_role init schemas register --dir schemas >"$LOGS/schemas.log"
echo "[demo] schemas registered ($(wc -l <"$LOGS/schemas.log") subjects)"
as_role init migrate

pids=()
stop_workers() {
  # SIGTERM: each worker finishes its in-flight batch, commits and exits.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_workers EXIT
GAVEL_INSTANCE_ID=demo-0 as_role aggregate aggregate >"$LOGS/aggregate.log" 2>&1 &
pids+=($!)
GAVEL_INSTANCE_ID=demo-0 as_role project project >"$LOGS/project.log" 2>&1 &
pids+=($!)
as_role sink sink >"$LOGS/sink.log" 2>&1 &
pids+=($!)
as_role event-store event-store >"$LOGS/event-store.log" 2>&1 &
pids+=($!)
# Sagas: both orchestrators, and every participant refusing 15 % of forward
# steps (some transiently), so retries and compensations happen in the demo.
GAVEL_INSTANCE_ID=demo-0 as_role saga-payment saga run payment >"$LOGS/saga-payment.log" 2>&1 &
pids+=($!)
GAVEL_INSTANCE_ID=demo-0 as_role saga-order saga run order >"$LOGS/saga-order.log" 2>&1 &
pids+=($!)
as_role participants participant all --failure-rate 0.15 --transient-share 0.5 >"$LOGS/participants.log" 2>&1 &
pids+=($!)
API=${GAVEL_QUERY_LISTEN:-127.0.0.1:8080}
as_role query-api query-api --listen "$API" >"$LOGS/query-api.log" 2>&1 &
pids+=($!)
echo "[demo] workers started, each as its own Kafka user and Postgres role: aggregate, project, sink, event-store, saga payment + order, participants, query-api on $API (pids ${pids[*]}); logs in $LOGS"

# Orders come in as the command API would send them (its principal may write order.events).
as_role command-api orders --count 60 >/dev/null
# The load generator and its read-model check are a tool (the local admin path); the
# read model is then read through the query API with a bearer token of tenant demo
# (`gavel token` mints one the same way:
# curl -H "Authorization: Bearer $("$GAVEL" token --user ann --tenant demo)" ...).
"$GAVEL" demo-load --query-api "http://$API" "$@" ||
  { echo "[demo] failed; logs in $LOGS (query-api.log for the API)"; exit 1; }
echo "[demo] event store audit (hash chains):"
sleep 1
as_role audit audit verify 2>/dev/null | sed 's/^/   /' 
echo "[demo] read models rebuilt from offset 0 of the events while the workers run (shadow tables, swap):"
as_role rebuild rebuild all 2>/dev/null | sed 's/^/   /' || echo "   rebuild failed; run: $GAVEL rebuild all"
echo "[demo] ... and again from the same events in the Postgres event store:"
as_role rebuild rebuild all --from event-store 2>/dev/null | sed 's/^/   /' ||
  echo "   rebuild failed; run: $GAVEL rebuild all --from event-store"
# Sagas settle within seconds of the last auction's end: wait until none is open.
for _ in $(seq 1 60); do
  payment=$("$GAVEL" saga status payment 2>/dev/null)
  order=$("$GAVEL" saga status order 2>/dev/null)
  if [[ $payment != *RUNNING* && $payment != *COMPENSATING* && $order != *RUNNING* && $order != *COMPENSATING* ]]; then
    break
  fi
  sleep 1
done
echo "[demo] payment sagas (one per sold auction, every demo run on this stack): $payment"
echo "[demo] order sagas (60 orders per run, 5 SKUs stocked 100 each): $order"
echo "[demo] done in $((SECONDS - t0))s (stack left running: make stack-down stops it)"
