#!/usr/bin/env bash
# bench/nginx.sh — the load-balanced deployment under load, in one run:
#   1. one node, direct, sessions in memory          (the baseline)
#   2. one node, direct, sessions in Redis           (the per-node cost of the Redis store)
#   3. nginx → one node, sessions in Redis           (the cost of the proxy hop)
#   4. nginx → three nodes, sessions in Redis        (scale-out)
# each driven by ../shared/bench/mcp-load.sh (wrk, stateful era, tools/call echo), printing
# rps and p99 with ratios to the baseline. nginx uses the shipped
# deploy/nginx/qudag-mcp-locations.conf. On one machine the nodes, nginx, Redis and wrk share
# the same cores: case 4 measures the overhead of spreading the load, not a machine's gain.
#
#   bench/nginx.sh      (BENCH_DURATION=S, BENCH_CONC=N, BENCH_BIN=path, QUDAG_TEST_REDIS_URL)
#
# Needs nginx and wrk (Debian packages), a Redis, and a qudag-mcp built with
# `--features redis,conformance` (built here unless BENCH_BIN is given). Every process it
# starts is stopped on exit; all traffic stays on 127.0.0.1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib/common.sh
. "$HERE/lib/common.sh"
REDIS=${QUDAG_TEST_REDIS_URL:-redis://127.0.0.1:6379}
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
[ -n "$NGINX" ] || { echo "bench: nginx is needed (apt-get install nginx)" >&2; exit 2; }
if [ -z "${BENCH_BIN:-}" ]; then
  (cd "$REPO" && cargo build -q --release -p qudag-mcp --features redis,conformance)
  BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/qudag-mcp"
else
  BIN=$BENCH_BIN
fi


# start_node STORE PREFIX: a node; its port in $PORT. (Not run in $(…): the processes must
# be this shell's children, and must not hold a command substitution's pipe open.)
start_node() {
  local port; port=$(free_port)
  QUDAG_PORT=$port QUDAG_REQUIRE_AUTH=false QUDAG_RATE_LIMIT=0 QUDAG_MAX_CONNECTIONS_PER_ADDRESS=0 QUDAG_LOG_LEVEL=warn \
    QUDAG_SESSION_STORE=$1 QUDAG_REDIS_URL=$REDIS QUDAG_REDIS_KEY_PREFIX=$2 \
    "$BIN" serve --fixtures conformance >"$WORK/node-$port.log" 2>&1 &
  PIDS+=($!)
  wait_live "$port"
  PORT=$port
}

# start_nginx PORT…: nginx in front of those nodes; its port in $PORT.
start_nginx() {
  local port dir servers=""; port=$(free_port); dir="$WORK/nginx-$port"; mkdir -p "$dir"
  for p in "$@"; do servers+="    server 127.0.0.1:$p;"$'\n'; done
  cat >"$dir/nginx.conf" <<NGINX
user root;
pid $dir/nginx.pid;
error_log $dir/error.log;
daemon off;
worker_processes 1;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  upstream qudag_mcp {
$servers    keepalive 64;
  }
  server {
    listen 127.0.0.1:$port;
    include $REPO/deploy/nginx/qudag-mcp-locations.conf;
  }
}
NGINX
  "$NGINX" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  PIDS+=($!)
  wait_live "$port"
  PORT=$port
}

load() { bash "$SHARED/mcp-load.sh" "http://127.0.0.1:$1/mcp" --era stateful --concurrency "$CONC" --duration "$DUR" --tool echo 2>/dev/null; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

prefix="qudag-bench-$$-"
declare -A RESULT
start_node memory "${prefix}m:"; RESULT[direct-memory]=$(load "$PORT")
start_node redis "${prefix}r:"; r1=$PORT; RESULT[direct-redis]=$(load "$r1")
start_nginx "$r1"; RESULT[nginx-1]=$(load "$PORT")
start_node redis "${prefix}r:"; r2=$PORT
start_node redis "${prefix}r:"; r3=$PORT
start_nginx "$r1" "$r2" "$r3"; RESULT[nginx-3]=$(load "$PORT")

base=$(field rps "${RESULT[direct-memory]}")
printf '%-34s %10s %9s %8s %12s\n' case rps p99_ms errors "rps vs base"
for case in direct-memory direct-redis nginx-1 nginx-3; do
  line=${RESULT[$case]}
  rps=$(field rps "$line"); p99=$(field p99_ms "$line"); errors=$(field errors "$line")
  printf '%-34s %10s %9s %8s %11.2fx\n' "$case" "$rps" "$p99" "$errors" "$(python3 -c "print($rps / $base)")"
done
