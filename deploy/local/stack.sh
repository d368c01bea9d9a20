#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Gavel local dev stack without Docker: PostgreSQL 15, Kafka 4.3.1 (single KRaft node) and
# Apicurio Registry 3.3.3, all bound to 127.0.0.1. See deploy/local/README.md.
#
# Usage: deploy/local/stack.sh up|down|status|logs-dir|tls-env|credentials-dir|restart-postgres|stop-registry|start-registry
#
# Environment (defaults in parentheses):
#   GAVEL_STACK_DIR   data, logs, pid files ($HOME/.local/share/gavel/stack, or
#                     /var/tmp/gavel-stack-$UID when running as root with a closed $HOME)
#   GAVEL_CACHE       downloaded jars ($HOME/.cache/gavel)
#   GAVEL_PG_PORT (5432)  GAVEL_KAFKA_PORT (9092)  GAVEL_KAFKA_CONTROLLER_PORT (9093)
#   GAVEL_KAFKA_SASL_SSL_PORT (9094: SASL_SSL + SCRAM, see lib/tls.sh)
#   GAVEL_REGISTRY_PORT (8081)  GAVEL_REGISTRY_MGMT_PORT (9000)  KAFKA_HEAP (-Xms256m -Xmx512m)
#   GAVEL_REGISTRY_PROXY_PORT (8082: the registry over TLS with basic auth, lib/registry_proxy.sh)
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
. "$HERE/lib/common.sh"
# shellcheck source=lib/tls.sh
. "$HERE/lib/tls.sh"
# shellcheck source=lib/postgres.sh
. "$HERE/lib/postgres.sh"
# shellcheck source=lib/kafka.sh
. "$HERE/lib/kafka.sh"
# shellcheck source=lib/registry.sh
. "$HERE/lib/registry.sh"
# shellcheck source=lib/access.sh
. "$HERE/lib/access.sh"
# shellcheck source=lib/registry_proxy.sh
. "$HERE/lib/registry_proxy.sh"

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  take_lock
  ensure_packages
  pg_up
  access_up
  kafka_up
  registry_up
  registry_proxy_up
  log "stack up in $((SECONDS - t0))s; logs in $LOG_DIR"
}

cmd_down() {
  if [[ ! -d $RUN_DIR ]]; then
    log "nothing to stop ($GAVEL_STACK_DIR does not exist)"
    return 0
  fi
  take_lock
  registry_proxy_down
  registry_down
  kafka_down
  pg_down
  log "stack down; logs in $LOG_DIR"
}

cmd_status() {
  local all_up=0 name port match pid state
  while read -r name port match; do
    pid=$(pid_of "$name")
    if [[ $name == postgres ]] && pg_running; then
      pid=$(pid_of postgres)
      state=up
    elif [[ $name != postgres ]] && pid_alive "$name" "$match"; then
      state=up
    else
      state=down all_up=3 pid=
    fi
    if [[ $state == up ]] && ! port_open "$port"; then
      state="up (port $port not answering yet)" all_up=3
    fi
    printf '[stack] %-14s pid %-8s port %-5s %s\n' "$name" "${pid:--}" "$port" "$state"
  done <<EOF
postgres $GAVEL_PG_PORT $PG_DATA
kafka $GAVEL_KAFKA_PORT $KAFKA_CONF
registry $GAVEL_REGISTRY_PORT $REGISTRY_JAR
registry-proxy $GAVEL_REGISTRY_PROXY_PORT $PROXY_CONF
EOF
  log "logs in $LOG_DIR"
  return "$all_up"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs-dir) echo "$LOG_DIR" ;;
  # KEY=VALUE lines a worker sets to reach this stack over SASL_SSL and Postgres TLS.
  tls-env) tls_env ;;
  # Where each role's GAVEL_CONFIG file with its own credentials is (lib/access.sh).
  credentials-dir) echo "$CRED_DIR" ;;
  # For fault tests: Postgres goes away and comes back with its data.
  restart-postgres)
    take_lock
    pg_down
    pg_up
    ;;
  # For fault tests: the schema registry goes away, then comes back (its
  # schemas live in Postgres, so ids are unchanged).
  stop-registry)
    take_lock
    registry_down
    ;;
  start-registry)
    take_lock
    registry_up
    ;;
  *)
    echo "usage: $0 up|down|status|logs-dir|tls-env|credentials-dir|restart-postgres|stop-registry|start-registry" >&2
    exit 2
    ;;
esac
