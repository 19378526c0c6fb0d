#!/usr/bin/env bash
# Run the official MCP conformance suite against this server's conformance fixture.
#
# Builds qudag-mcp with the `conformance` feature, starts `qudag-mcp serve --fixtures
# conformance` on a free loopback port (plain HTTP, authentication off), runs
# ../shared/conformance/run.sh against it at both protocol revisions (2025-11-25 and
# 2026-07-28, or the revisions given as arguments), stops the server, and exits with the
# suite's status. Results are written to $CONFORMANCE_RESULTS (default
# target/conformance-results); the server's log to <results>/server.log.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=${QUDAG_SHARED_DIR:-$root/../shared}
runner="$shared/conformance/run.sh"
[ -x "$runner" ] || { echo "conformance: $runner not found (set QUDAG_SHARED_DIR)" >&2; exit 2; }

target=${CARGO_TARGET_DIR:-$root/target}
results=${CONFORMANCE_RESULTS:-$target/conformance-results}
mkdir -p "$results"

# The same feature resolution as `cargo test --workspace --all-features`, so the binary is
# shared with the test build instead of compiled again.
(cd "$root" && cargo build --workspace --all-features --bins --quiet)
bin="$target/debug/qudag-mcp"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
QUDAG_HOST=127.0.0.1 QUDAG_PORT=$port QUDAG_REQUIRE_AUTH=false QUDAG_LOG_FORMAT=json \
  QUDAG_RATE_LIMIT=100000 QUDAG_RATE_LIMIT_BURST=10000 \
  "$bin" serve --fixtures conformance >"$results/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then
    echo "conformance: the server exited; its log:" >&2
    cat "$results/server.log" >&2
    exit 2
  fi
  sleep 0.1
done

status=0
CONFORMANCE_RESULTS=$results "$runner" "http://127.0.0.1:$port/mcp" "$@" || status=$?
exit "$status"
