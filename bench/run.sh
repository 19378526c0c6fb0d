#!/usr/bin/env bash
# bench/run.sh — QuDAG MCP server benchmark: throughput/latency and memory, side by side
# with the official Rust SDK (rmcp-echo) and a bare-hyper ceiling, measured in one run.
#
#   bench/run.sh                 full run (≈ 12–15 min on 2 cores with the defaults)
#   BENCH_QUICK=1 bench/run.sh   smoke test (2 s per point, 1 rep, 1 s warm-up)
#
# Environment (all optional):
#   BENCH_QUICK=1            quick mode: duration 2, reps 1, warm-up 1 (each still overridable)
#   BENCH_DURATION=S         seconds per load point        (default 10, as compare.sh)
#   BENCH_REPS=N             repetitions per point, median (default 3, as compare.sh)
#   BENCH_WARMUP=S           warm-up seconds per server    (default 3, as compare.sh)
#   BENCH_CONC="1 32 256"    concurrency levels
#   BENCH_ERAS="stateful stateless"   eras for throughput
#   BENCH_PEERS="rmcp bare-hyper"     baselines for throughput (memory always uses rmcp)
#   BENCH_PARTS="throughput memory"   which parts to run
#   BENCH_MEM_SESSIONS=N     sessions (and GET streams) in the memory test (default 10000)
#   BENCH_MEM_SERVERS="qudag rmcp"    servers in the memory test
#   BENCH_MEM_RELEASE_TIMEOUT=S  seconds to wait for a server to close its side of the
#                            streams after the client closed them (default 40)
#   BENCH_SHARED_DIR=DIR     the shared bench dir (default: <repo>/../shared/bench)
#   BENCH_RESULTS=DIR        where results go (default: <repo>/target/bench-results)
#   BENCH_BIN=PATH           use this qudag-mcp binary, skip `cargo build`
#   BENCH_NO_BUILD=1         skip `cargo build` (use the binary already in the target dir)
#   PEERS_TARGET=DIR         cargo target dir for the peers (default $TMPDIR/qudag-peers-target)
#   CARGO_TARGET_DIR         where our binary is built (default <repo>/target)
#
# All traffic goes to 127.0.0.1. Every load step is bounded in time (wrk -d, timeouts in the
# memory generator, `timeout` around each step), and every server started here is stopped.
# Exit status: 0 when every step ran without errors, 1 when a step failed or counted
# errors (the summary says which), 2 for a setup problem (build, wrk, missing files).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED=${BENCH_SHARED_DIR:-$REPO/../shared/bench}
log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 2; }
[ -d "$SHARED" ] || die "shared bench dir not found: $SHARED (set BENCH_SHARED_DIR)"
SHARED=$(cd "$SHARED" && pwd)
COMPARE=$SHARED/compare.sh
[ -x "$COMPARE" ] || [ -f "$COMPARE" ] || die "missing $COMPARE"

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  DUR=${BENCH_DURATION:-2} REPS=${BENCH_REPS:-1} WARM=${BENCH_WARMUP:-1}
else
  DUR=${BENCH_DURATION:-10} REPS=${BENCH_REPS:-3} WARM=${BENCH_WARMUP:-3}
fi
CONCS=${BENCH_CONC:-"1 32 256"}
ERAS=${BENCH_ERAS:-"stateful stateless"}
PEERS=${BENCH_PEERS:-"rmcp bare-hyper"}
PARTS=${BENCH_PARTS:-"throughput memory"}
MEM_N=${BENCH_MEM_SESSIONS:-10000}
MEM_SERVERS=${BENCH_MEM_SERVERS:-"qudag rmcp"}
MEM_RELEASE=${BENCH_MEM_RELEASE_TIMEOUT:-40}
for v in DUR REPS WARM MEM_N MEM_RELEASE; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for c in $CONCS; do [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONC: bad level '$c'"; done
for e in $ERAS; do case $e in stateful|stateless) ;; *) die "BENCH_ERAS: bad era '$e'" ;; esac; done
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

RESULTS=${BENCH_RESULTS:-$REPO/target/bench-results}
mkdir -p "$RESULTS" || die "cannot create $RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=$RESULTS/$STAMP
mkdir -p "$RUN"
export TMPDIR=${TMPDIR:-/tmp}
export PEERS_TARGET=${PEERS_TARGET:-$TMPDIR/qudag-peers-target}
T_START=$(date +%s)
STATUS=0

# ------------------------------------------------------------------ servers we start
declare -a STARTED=()
stop_pid() { # PID: SIGTERM, wait up to 10 s, then SIGKILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    log "server $pid still running 10 s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() { local p; for p in "${STARTED[@]}"; do stop_pid "$p"; done; STARTED=(); }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_up() { # PORT PID: until the port accepts connections (30 s at most)
  local i
  for i in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { log "server exited at start"; return 1; }
    sleep 0.2
  done
  log "127.0.0.1:$1 did not accept connections in 30 s"; return 1
}

# ------------------------------------------------------------------ 1. tools and build
for bin in cargo python3 curl; do command -v "$bin" >/dev/null || die "'$bin' not found on PATH"; done
if ! command -v wrk >/dev/null; then
  log "wrk not found: installing it with apt-get"
  SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get install -y wrk >&2 ||
    { "${SUDO[@]}" apt-get update >&2 && "${SUDO[@]}" apt-get install -y wrk >&2; } ||
    die "could not install wrk (apt-get install -y wrk)"
fi
PIN_S=() PIN_L=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then PIN_S=(taskset -c 0); PIN_L=(taskset -c 1); fi

if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
  log "using BENCH_BIN=$BIN (no build)"
else
  TARGET=${CARGO_TARGET_DIR:-$REPO/target}
  case $TARGET in /*) ;; *) TARGET=$REPO/$TARGET ;; esac
  BIN=$TARGET/release/qudag-mcp
  if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    log "building: cargo build --release -p qudag-mcp --features conformance"
    (cd "$REPO" && cargo build --release -p qudag-mcp --features conformance) >&2 ||
      die "building qudag-mcp failed"
  fi
fi
[ -x "$BIN" ] || die "no qudag-mcp binary at $BIN"
log "building the peers (rmcp-echo, bare-hyper) into $PEERS_TARGET"
(cd "$SHARED/peers" && CARGO_TARGET_DIR=$PEERS_TARGET cargo build --release --quiet) >&2 ||
  die "building the peers in $SHARED/peers failed"
RMCP=$PEERS_TARGET/release/rmcp-echo
[ -x "$RMCP" ] || die "no rmcp-echo at $RMCP"

# Open files: the memory test holds BENCH_MEM_SESSIONS sockets in the server and as many in
# the load generator. Raise the soft limit (inherited by both) as far as the hard limit allows.
NEED_FD=$((MEM_N + 512))
SOFT=$(ulimit -Sn) HARD=$(ulimit -Hn)
if [ "$SOFT" != unlimited ] && [ "$SOFT" -lt "$NEED_FD" ]; then
  if [ "$HARD" = unlimited ] || [ "$HARD" -ge "$NEED_FD" ]; then ulimit -Sn "$NEED_FD"
  else ulimit -Sn "$HARD"; fi
fi
log "open-file limit $(ulimit -Sn) (hard $(ulimit -Hn)); memory test wants $NEED_FD"

GIT_REV=$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown)
{
  echo "stamp=$STAMP"
  echo "git=$GIT_REV"
  echo "quick=$QUICK duration=$DUR reps=$REPS warmup=$WARM"
  echo "conc=$CONCS"
  echo "eras=$ERAS"
  echo "peers=$PEERS"
  echo "mem_sessions=$MEM_N mem_release_timeout=$MEM_RELEASE"
  echo "cpus=$(nproc) pinned=$([ ${#PIN_S[@]} -gt 0 ] && echo yes || echo no)"
  echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "bin=$BIN"
} >"$RUN/meta.txt"

# ------------------------------------------------------------------ 2. throughput / latency
qudag_env() { # PORT -> the env assignments our server runs with
  echo QUDAG_HOST=127.0.0.1 QUDAG_PORT="$1" QUDAG_REQUIRE_AUTH=false QUDAG_RATE_LIMIT=0 QUDAG_MAX_CONNECTIONS_PER_ADDRESS=0 \
       QUDAG_LOG_LEVEL=warn QUDAG_SHUTDOWN_GRACE_SECS=5
}
if has_part throughput; then
  n_servers=$((1 + $(wc -w <<<"$PEERS")))
  n_conc=$(wc -w <<<"$CONCS")
  # wrk time + per-run overhead (handshake, samples, server start/stop), and slack.
  bound=$(( n_servers * (WARM + 20 + n_conc * REPS * (DUR + 15)) + 300 ))
  for era in $ERAS; do
    port=$(free_port)
    log "throughput, era $era: compare.sh (duration ${DUR}s, reps $REPS, conc \"$CONCS\"), at most ${bound}s"
    t0=$(date +%s)
    # shellcheck disable=SC2046
    timeout -k 15 "$bound" bash "$COMPARE" --url "http://127.0.0.1:$port/mcp" --era "$era" \
        --conc "$CONCS" --duration "$DUR" --reps "$REPS" --warmup "$WARM" --peers "$PEERS" -- \
        env $(qudag_env "$port") "$BIN" serve --fixtures conformance \
        >"$RUN/compare-$era.txt" 2>"$RUN/compare-$era.err"
    rc=$?
    cat "$RUN/compare-$era.txt" >&2
    log "era $era: compare.sh exit $rc after $(( $(date +%s) - t0 ))s"
    if [ $rc -ne 0 ]; then
      STATUS=1; echo "compare.sh exit $rc" >>"$RUN/compare-$era.txt"
      tail -5 "$RUN/compare-$era.err" >&2
    fi
    cp "$TMPDIR/compare-ours.log" "$RUN/qudag-$era.log" 2>/dev/null
  done
fi

# ------------------------------------------------------------------ 3. memory
mem_run() { # NAME
  local name=$1 port pid rc
  port=$(free_port)
  case $name in
    qudag)
      local maxs=$(( MEM_N * 2 > 20000 ? MEM_N * 2 : 20000 ))
      # shellcheck disable=SC2046
      "${PIN_S[@]}" env $(qudag_env "$port") QUDAG_MAX_SESSIONS=$maxs \
          QUDAG_SESSION_IDLE_TIMEOUT_SECS=3600 QUDAG_SESSION_ABSOLUTE_TIMEOUT_SECS=86400 \
          "$BIN" serve --fixtures conformance >"$RUN/mem-qudag.log" 2>&1 &
      pid=$! ;;
    rmcp)
      "${PIN_S[@]}" "$RMCP" "$port" stateful >"$RUN/mem-rmcp.log" 2>&1 &
      pid=$! ;;
    *) log "unknown memory server $name"; return 1 ;;
  esac
  STARTED+=("$pid")
  if ! wait_up "$port" "$pid"; then stop_pid "$pid"; echo "mem server=$name errors=start" >"$RUN/mem-$name.txt"; return 1; fi
  log "memory, $name (pid $pid): $MEM_N sessions, then $MEM_N GET streams"
  # pid is the server itself: taskset and env exec it.
  timeout -k 5 420 "${PIN_L[@]}" python3 "$HERE/mem_sessions.py" --url "http://127.0.0.1:$port/mcp" \
      --pid "$pid" --name "$name" --sessions "$MEM_N" --release-timeout "$MEM_RELEASE" --deadline 360 \
      >"$RUN/mem-$name.txt" 2>"$RUN/mem-$name.err"
  rc=$?
  cat "$RUN/mem-$name.err" >&2
  [ -s "$RUN/mem-$name.txt" ] || echo "mem server=$name errors=exit$rc" >"$RUN/mem-$name.txt"
  cat "$RUN/mem-$name.txt" >&2
  stop_pid "$pid"
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
  return $rc
}
if has_part memory; then
  for s in $MEM_SERVERS; do
    mem_run "$s" || STATUS=1
  done
fi

# ------------------------------------------------------------------ 4. summary
echo "elapsed=$(( $(date +%s) - T_START ))" >>"$RUN/meta.txt"
python3 "$HERE/summary.py" "$RUN" >"$RUN/summary.txt" || { STATUS=1; log "summary failed"; }
cp "$RUN/summary.txt" "$RESULTS/summary-$STAMP.txt" 2>/dev/null
ln -sfn "$STAMP" "$RESULTS/latest" 2>/dev/null
grep -q '^status: errors' "$RUN/summary.txt" && STATUS=1
echo
cat "$RUN/summary.txt"
log "summary written to $RESULTS/summary-$STAMP.txt (raw output in $RUN/)"
exit $STATUS
