#!/usr/bin/env bash
# bench/otlp.sh — the cost of exporting traces over OTLP, in one run:
#   1. a node built with the `otlp` feature, export off              (the baseline)
#   2. the same binary exporting every span to a local collector      (the cost of tracing)
#   3. the same, sampling 10% of new traces (OTEL_TRACES_SAMPLER=parentbased_traceidratio)
# each driven by ../shared/bench/mcp-load.sh (wrk, stateless era, tools/call echo), printing
# rps and p99 with the ratio to the baseline, and how many spans the collector received.
# The collector is `cargo run --example otlp_sink` (an OTLP/gRPC receiver that counts).
#
#   bench/otlp.sh      (BENCH_DURATION=S, BENCH_CONC=N)
#
# Needs wrk (Debian package). Every process it starts is stopped on exit; all traffic stays
# on 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib/common.sh
. "$HERE/lib/common.sh"
(cd "$REPO" && cargo build -q --release -p qudag-mcp --features conformance,otlp --bin qudag-mcp --example otlp_sink)
TARGET="${CARGO_TARGET_DIR:-$REPO/target}/release"

# start_node [VAR=VALUE…]: a node with those variables; its port in $PORT, its pid in $PID.
start_node() {
  local port; port=$(free_port)
  env "$@" QUDAG_PORT="$port" QUDAG_REQUIRE_AUTH=false QUDAG_RATE_LIMIT=0 QUDAG_MAX_CONNECTIONS_PER_ADDRESS=0 QUDAG_LOG_LEVEL=warn \
    "$TARGET/qudag-mcp" serve --fixtures conformance >"$WORK/node-$port.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  wait_live "$port"
  PORT=$port
}

load() { bash "$SHARED/mcp-load.sh" "http://127.0.0.1:$1/mcp" --era stateless --concurrency "$CONC" --duration "$DUR" --check sample 2>/dev/null; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# start_sink NAME: a collector; its port in $SINK_PORT, its pid in $SINK.
start_sink() {
  "$TARGET/examples/otlp_sink" >"$WORK/$1.out" &
  SINK=$!
  PIDS+=("$SINK")
  for _ in $(seq 1 100); do grep -q '^port=' "$WORK/$1.out" 2>/dev/null && break; sleep 0.1; done
  SINK_PORT=$(sed -n 's/^port=//p' "$WORK/$1.out")
}
# stop_sink NAME: stop the collector; the spans it received.
stop_sink() { kill -TERM "$SINK"; wait "$SINK" || true; sed -n 's/^spans=//p' "$WORK/$1.out"; }

start_node
off=$(load "$PORT"); kill -TERM "$PID"; wait "$PID" || true

start_sink all
start_node OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_SERVICE_NAME=qudag-bench
on=$(load "$PORT"); kill -TERM "$PID"; wait "$PID" || true
spans_on=$(stop_sink all)

start_sink sampled
start_node OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_SERVICE_NAME=qudag-bench \
  OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1
sampled=$(load "$PORT"); kill -TERM "$PID"; wait "$PID" || true
spans_sampled=$(stop_sink sampled)

printf '%-34s %10s %9s %8s %7s\n' case rps p99_ms errors ratio
base=$(field rps "$off")
for row in "export off (baseline)|$off" "export on, collector on loopback|$on" "export on, 10% of traces sampled|$sampled"; do
  name=${row%%|*}; line=${row#*|}
  rps=$(field rps "$line")
  printf '%-34s %10s %9s %8s %7s\n' "$name" "$rps" "$(field p99_ms "$line")" "$(field errors "$line")" \
    "$(python3 -c "print(f'{$rps/$base:.2f}x')")"
done
echo "spans the collector received: case 2 $spans_on of $(( 2 * $(field requests "$on") )) made (two per request),"
echo "case 3 $spans_sampled of $(( 2 * $(field requests "$sampled") )) made; beyond the sample, the rest were dropped"
echo "by the batch span processor's full queue (OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_SCHEDULE_DELAY)"
