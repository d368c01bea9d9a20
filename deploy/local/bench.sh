#!/usr/bin/env bash
# Benchmarks with a baseline measured in the same run: Kafka's own
# ProducerPerformance / ConsumerPerformance give the broker's raw limit on this
# machine, then `gavel bench aggregate` measures the processor and prints JSON +
# a summary with absolute figures and ratios. `bench.sh sink` measures the
# auction_details sink and rebuild against a plain COPY in the same run.
# Usage: bench.sh [aggregate|sink] [COMMANDS] [AUCTIONS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
MODE=${1:-aggregate}
COMMANDS=${2:-200000}
AUCTIONS=${3:-20000}
bash deploy/local/stack.sh up >/dev/null
bash deploy/local/build.sh >/dev/null
if [[ $MODE == sink ]]; then
  exec target/release/gavel bench sink --commands "$COMMANDS" --auctions "$AUCTIONS"
fi
# shellcheck source=lib/common.sh
. deploy/local/lib/common.sh
KAFKA_LIBS=$GAVEL_CACHE/kafka-4.3.1/libs
BOOTSTRAP=127.0.0.1:${GAVEL_KAFKA_PORT}
LOG_DIR=$(bash deploy/local/stack.sh logs-dir)
kafka_tool() { java -Xmx512m -Dlog4j2.configurationFile="$ROOT/deploy/local/kafka-log4j2.properties" \
  -Dkafka.logs.dir="$LOG_DIR" -cp "$KAFKA_LIBS/*" "$@"; }

topic=bench-raw-$RANDOM$RANDOM
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$topic" \
  --partitions 6 --replication-factor 1 >/dev/null
# Same producer settings as Gavel's command producer; 160-byte records ~ an Avro PlaceBid.
produce_line=$(kafka_tool org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$COMMANDS" \
  --record-size 160 --throughput -1 --producer-props bootstrap.servers="$BOOTSTRAP" acks=all \
  enable.idempotence=true linger.ms=5 compression.type=lz4 2>/dev/null | tail -n1)
raw_produce=$(sed -E 's/.* records sent, ([0-9.]+) records\/sec.*/\1/' <<<"$produce_line")
consume_out=$(kafka_tool org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$BOOTSTRAP" \
  --topic "$topic" --messages "$COMMANDS" --timeout 60000 2>/dev/null | tail -n1)
# CSV: start, end, MB, MB/s, nMsg, nMsg/s, rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s
raw_consume=$(awk -F', *' '{print $10}' <<<"$consume_out")
kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete --topic "$topic" >/dev/null
echo "[bench] broker baseline: $raw_produce records/s produced (acks=all, idempotent), $raw_consume records/s consumed"

target/release/gavel bench aggregate --commands "$COMMANDS" --auctions "$AUCTIONS" \
  --baseline-produce-rps "$raw_produce" --baseline-consume-rps "$raw_consume"
