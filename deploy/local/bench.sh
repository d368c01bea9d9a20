#!/usr/bin/env bash
# Benchmarks with a baseline measured in the same run. Kafka's own
# ProducerPerformance / ConsumerPerformance give the broker's raw limit on this
# machine; `gavel bench run` then measures a raw rdkafka loop, the whole
# pipeline as worker processes (throughput flat out, latency at fixed rates,
# memory and CPU per worker), the aggregate's restore, the read side's
# rebuild and the payment saga stage (orchestrator + participants), and writes a JSON + Markdown + PNG report under bench/reports/
# (how to read it: bench/README.md).
# Usage: bench.sh [run [gavel bench run flags...] | aggregate [COMMANDS [AUCTIONS]] | sink [COMMANDS [AUCTIONS]]]
#   e.g. bench.sh run --commands 50000 --rates 1000,2000,5000,10000
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
MODE=${1:-run}
shift || true
case $MODE in
  run | aggregate | sink) ;;
  -h | --help | help)
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    echo "Flags of run: target/release/gavel bench run --help"
    exit 0 ;;
  *) echo "bench.sh: unknown mode '$MODE' (run, aggregate, sink or --help)" >&2; exit 2 ;;
esac
bash deploy/local/stack.sh up >/dev/null
bash deploy/local/build.sh >/dev/null
if [[ $MODE == sink ]]; then
  exec target/release/gavel bench sink --commands "${1:-200000}" --auctions "${2:-20000}"
fi
# shellcheck source=lib/common.sh
. deploy/local/lib/common.sh
KAFKA_LIBS=$GAVEL_CACHE/kafka-4.3.1/libs
BOOTSTRAP=127.0.0.1:${GAVEL_KAFKA_PORT}
LOG_DIR=$(bash deploy/local/stack.sh logs-dir)
# The size of an Avro command or event record of ours, headers aside.
RECORD_BYTES=160
kafka_tool() { java -Xmx512m -Dlog4j2.configurationFile="$ROOT/deploy/local/kafka-log4j2.properties" \
  -Dkafka.logs.dir="$LOG_DIR" -cp "$KAFKA_LIBS/*" "$@"; }

# Kafka's perf tools on a topic of their own: prints "PRODUCE_RPS CONSUME_RPS".
broker_baseline() {
  local records=$1 topic=bench-raw-$RANDOM$RANDOM produce_line consume_out
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$topic" \
    --partitions 6 --replication-factor 1 >/dev/null
  # Same producer settings as Gavel's command producer.
  produce_line=$(kafka_tool org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$records" \
    --record-size "$RECORD_BYTES" --throughput -1 --producer-props bootstrap.servers="$BOOTSTRAP" acks=all \
    enable.idempotence=true linger.ms=5 compression.type=lz4 2>/dev/null | tail -n1)
  consume_out=$(kafka_tool org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$BOOTSTRAP" \
    --topic "$topic" --messages "$records" --timeout 60000 2>/dev/null | tail -n1)
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete --topic "$topic" >/dev/null
  # CSV: start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
  echo "$(sed -E 's/.* records sent, ([0-9.]+) records\/sec.*/\1/' <<<"$produce_line") $(awk -F', *' '{print $10}' <<<"$consume_out")"
}

started=$(date +%s)
echo "[bench] broker baseline: Kafka ProducerPerformance / ConsumerPerformance, 200000 records of $RECORD_BYTES bytes"
read -r raw_produce raw_consume < <(broker_baseline 200000)
echo "[bench] broker baseline: $raw_produce records/s produced (acks=all, idempotent), $raw_consume records/s consumed"
if [[ $MODE == aggregate ]]; then
  exec target/release/gavel bench aggregate --commands "${1:-200000}" --auctions "${2:-20000}" \
    --baseline-produce-rps "$raw_produce" --baseline-consume-rps "$raw_consume"
fi
target/release/gavel bench run --baseline-produce-rps "$raw_produce" --baseline-consume-rps "$raw_consume" \
  --baseline-record-bytes "$RECORD_BYTES" "$@"
echo "[bench] wall time: $(( $(date +%s) - started )) s"
