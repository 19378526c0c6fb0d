# Sourced by bench/nginx.sh and bench/otlp.sh (after they set HERE and REPO): the shared load driver
# ($SHARED), the run's length and concurrency ($DUR, $CONC), a scratch directory ($WORK),
# processes to stop on exit (append their pids to PIDS), and a free loopback port.
SHARED=${BENCH_SHARED_DIR:-$REPO/../shared/bench}
DUR=${BENCH_DURATION:-10}
CONC=${BENCH_CONC:-32}
command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_live PORT: until the node on PORT answers its liveness probe (10 s at most).
wait_live() {
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$1/health/live" >/dev/null 2>&1 && return; sleep 0.1; done
}
