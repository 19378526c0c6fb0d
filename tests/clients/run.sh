#!/usr/bin/env bash
# Run real, official MCP clients against the QuDAG MCP server.
#
# usage: tests/clients/run.sh [--install] [SUITE ...]
#   SUITE      any of: python ts-sdk-v1 ts-client-v2 inspector-cli rust (default: all)
#   --install  only install the suites' pinned clients (what tests/run.sh does first)
#
# Builds the server (cargo build --workspace --all-features --bins), installs the
# pinned clients (fast when already installed), starts the server with the
# conformance fixtures on a free loopback port, runs every suite, stops the server,
# prints one line per check and ends with `clients: N passed, M failed`.
#
# environment:
#   QUDAG_CLIENTS_CACHE    where the Python venv lives
#                          (default: $HOME/.cache/qudag-mcp/clients)
#   QUDAG_CLIENTS_RESULTS  folder for the server log and each suite's log
#                          (default: tests/clients/results, git-ignored)
#   QUDAG_CLIENTS_SUITE_TIMEOUT  seconds one suite may run (default 300)
#   QUDAG_MCP_BIN          use this server binary instead of building one
#   PYTHON                 the Python (>= 3.10) to create the venv with (default python3)
#   CARGO_TARGET_DIR       the main workspace's target dir (default target/): the server
#                          binary is looked up there, and the Rust client builds there too
#
# exit status: 0 when every check passed; 1 when a check failed; 2 when setup failed
# (server build or start, a client's install; the other suites still run when they can).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/server.sh
. "$HERE/../lib/server.sh"
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${QUDAG_CLIENTS_CACHE:-${HOME:-/tmp}/.cache/qudag-mcp/clients}
# The main workspace's target dir: the server binary is there, and the Rust client builds
# there too (its own workspace and lock file; the crates both use are built once).
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
case "$TARGET" in /*) ;; *) TARGET="$REPO/$TARGET" ;; esac
RESULTS=${QUDAG_CLIENTS_RESULTS:-$HERE/results}
SUITE_TIMEOUT=${QUDAG_CLIENTS_SUITE_TIMEOUT:-300}
PYTHON=${PYTHON:-python3}
ALL_SUITES=(python ts-sdk-v1 ts-client-v2 inspector-cli rust)

# Checks each suite reports; fewer lines than this (a crash) count as failures.
declare -A EXPECTED=([python]=10 [ts-sdk-v1]=6 [ts-client-v2]=21 [inspector-cli]=10 [rust]=20)

case "${1:-}" in -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
INSTALL_ONLY=0
if [ "${1:-}" = --install ]; then INSTALL_ONLY=1; shift; fi
if [ "$#" -gt 0 ]; then SUITES=("$@"); else SUITES=("${ALL_SUITES[@]}"); fi
for s in "${SUITES[@]}"; do
  [ -n "${EXPECTED[$s]:-}" ] || { echo "run.sh: unknown suite '$s' (known: ${ALL_SUITES[*]})" >&2; exit 2; }
done
wants() { local s; for s in "${SUITES[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

mkdir -p "$CACHE" "$RESULTS" || { echo "run.sh: cannot create $CACHE or $RESULTS" >&2; exit 2; }
RESULTS=$(cd "$RESULTS" && pwd)
rm -f "$RESULTS"/*.log

passed=0
failed=0
setup_failed=0
T0=$(date +%s)
say() { echo "run.sh: $*" >&2; }
elapsed() { echo "$(( $(date +%s) - T0 ))s"; }
fail_setup() { # name, reason: a setup step that takes its suites down with it
  echo "FAIL setup $1: $2"
  failed=$((failed + 1))
  setup_failed=1
}
finish() {
  echo "clients: $passed passed, $failed failed"
  [ "$setup_failed" -ne 0 ] && exit 2
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}
sha() { cat "$@" | sha256sum | cut -c1-64; }

# ---- 1. the server ------------------------------------------------------------------
if [ "$INSTALL_ONLY" -eq 1 ]; then
  : # no server to build
elif [ -n "${QUDAG_MCP_BIN:-}" ]; then
  SERVER_BIN=$QUDAG_MCP_BIN
else
  say "building the server (cargo build --workspace --all-features --bins) [$(elapsed)]"
  if ! (cd "$REPO" && cargo build --workspace --all-features --bins) >"$RESULTS/build-server.log" 2>&1; then
    tail -n 30 "$RESULTS/build-server.log" >&2
    fail_setup server "cargo build failed (see $RESULTS/build-server.log)"
    finish
  fi
  # A link of its own (a copy across file systems): another checkout sharing the target dir
  # may build qudag-mcp with other features over target/debug/qudag-mcp while the suites run.
  SERVER_BIN=$RESULTS/qudag-mcp
  rm -f "$SERVER_BIN"
  ln "$TARGET/debug/qudag-mcp" "$SERVER_BIN" 2>/dev/null || cp "$TARGET/debug/qudag-mcp" "$SERVER_BIN" ||
    { fail_setup server "no server binary at $TARGET/debug/qudag-mcp"; finish; }
fi
[ "$INSTALL_ONLY" -eq 1 ] || [ -x "$SERVER_BIN" ] || { fail_setup server "no server binary at $SERVER_BIN"; finish; }

# ---- 2. the clients (each install is skipped when its lock file is already installed) ---
declare -A READY=()

setup_python() {
  local venv=$CACHE/py-venv req=$HERE/python/requirements.txt want have
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    fail_setup python "need Python >= 3.10 as \$PYTHON (${PYTHON})"; return
  fi
  want=$(sha "$req" <(printf '%s' "$("$PYTHON" -c 'import sys; print(sys.version)')"))
  have=$(cat "$venv/.qudag-installed" 2>/dev/null || true)
  if [ "$want" != "$have" ] || ! "$venv/bin/python" -c 'import mcp' 2>/dev/null; then
    say "installing the Python clients into $venv [$(elapsed)]"
    rm -rf "$venv"
    if ! { "$PYTHON" -m venv "$venv" &&
           "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req" &&
           "$venv/bin/python" -m pip check --disable-pip-version-check; } >"$RESULTS/install-python.log" 2>&1; then
      tail -n 20 "$RESULTS/install-python.log" >&2
      fail_setup python "pip install -r python/requirements.txt failed (see $RESULTS/install-python.log)"; return
    fi
    echo "$want" >"$venv/.qudag-installed"
  fi
  READY[python]=1
}

setup_node() {
  local dir=$HERE/ts want have
  want=$(sha "$dir/package-lock.json" "$dir/package.json")
  have=$(cat "$dir/node_modules/.qudag-installed" 2>/dev/null || true)
  if [ "$want" != "$have" ] || ! "$dir/node_modules/.bin/node" --version >/dev/null 2>&1; then
    command -v npm >/dev/null 2>&1 || { fail_setup ts "npm is required"; return; }
    say "installing the TypeScript clients (npm ci in $dir) [$(elapsed)]"
    if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >"$RESULTS/install-ts.log" 2>&1; then
      tail -n 20 "$RESULTS/install-ts.log" >&2
      fail_setup ts "npm ci failed (see $RESULTS/install-ts.log)"; return
    fi
    "$dir/node_modules/.bin/node" --version >/dev/null 2>&1 || { fail_setup ts "the pinned Node.js did not install"; return; }
    echo "$want" >"$dir/node_modules/.qudag-installed"
  fi
  READY[ts-sdk-v1]=1; READY[ts-client-v2]=1; READY[inspector-cli]=1
}

setup_rust() {
  say "building the rmcp client (cargo build --locked, target $TARGET) [$(elapsed)]"
  if ! CARGO_TARGET_DIR=$TARGET cargo build --locked --quiet \
      --manifest-path "$HERE/rust/Cargo.toml" >"$RESULTS/build-rust.log" 2>&1; then
    tail -n 30 "$RESULTS/build-rust.log" >&2
    fail_setup rust "cargo build of tests/clients/rust failed (see $RESULTS/build-rust.log)"; return
  fi
  READY[rust]=1
}

wants python && setup_python
{ wants ts-sdk-v1 || wants ts-client-v2 || wants inspector-cli; } && setup_node
wants rust && setup_rust
if [ "$INSTALL_ONLY" -eq 1 ]; then
  say "clients installed in $(elapsed)"
  [ "$setup_failed" -eq 0 ] || exit 2
  exit 0
fi

# ---- 3. start the server on a free loopback port -------------------------------------
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
  { fail_setup server "could not pick a free port"; finish; }
URL=http://127.0.0.1:$PORT/mcp
say "starting $SERVER_BIN on 127.0.0.1:$PORT [$(elapsed)]"
QUDAG_HOST=127.0.0.1 QUDAG_PORT=$PORT QUDAG_REQUIRE_AUTH=false QUDAG_RATE_LIMIT=0 QUDAG_LOG_FORMAT=json \
  "$SERVER_BIN" serve --fixtures conformance >"$RESULTS/server.log" 2>&1 &
SERVER_PID=$!
stop_server() { server_stop "$SERVER_PID"; }
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM
if ! server_wait_live "$SERVER_PID" "http://127.0.0.1:$PORT/health/live" "$PYTHON"; then
  tail -n 20 "$RESULTS/server.log" >&2
  fail_setup server "the server did not become live on 127.0.0.1:$PORT (see $RESULTS/server.log)"
  finish
fi

# ---- 4. the suites -------------------------------------------------------------------
NODE=$HERE/ts/node_modules/.bin/node
suite_cmd() { # sets cmd=(program args...) for a suite
  case "$1" in
    python)        cmd=("$CACHE/py-venv/bin/python" "$HERE/python/test_python_sdk.py") ;;
    ts-sdk-v1)     cmd=("$NODE" "$HERE/ts/sdk-v1.mjs") ;;
    ts-client-v2)  cmd=("$NODE" "$HERE/ts/client-v2.mjs") ;;
    inspector-cli) cmd=("$NODE" "$HERE/ts/inspector-cli.mjs") ;;
    rust)          cmd=("$TARGET/debug/qudag-mcp-client-tests-rmcp") ;;
  esac
}

for suite in "${SUITES[@]}"; do
  [ -n "${READY[$suite]:-}" ] || continue # its setup already reported a failure
  say "suite $suite [$(elapsed)]"
  log=$RESULTS/$suite.log
  suite_cmd "$suite"
  s_pass=0; s_fail=0
  # Check lines (PASS/FAIL) go to the terminal and the log; everything else to the log.
  while IFS= read -r line; do
    case "$line" in
      PASS\ *) echo "$line"; s_pass=$((s_pass + 1)) ;;
      FAIL\ *) echo "$line"; s_fail=$((s_fail + 1)) ;;
    esac
  done < <(cd "$HERE" && timeout -k 5 "$SUITE_TIMEOUT" "${cmd[@]}" "$URL" 2>&1 | tee "$log"; echo "SUITE_STATUS ${PIPESTATUS[0]}" >>"$log")
  status=$(sed -n 's/^SUITE_STATUS //p' "$log" | tail -n1)
  missing=$(( EXPECTED[$suite] - s_pass - s_fail ))
  if [ "$missing" -gt 0 ]; then
    echo "FAIL $suite: $missing of ${EXPECTED[$suite]} checks not reported (exit status ${status:-?}; see $log)"
    s_fail=$((s_fail + missing))
  elif [ "${status:-1}" != 0 ] && [ "$s_fail" -eq 0 ]; then
    echo "FAIL $suite: exited with status ${status:-?} though every check passed (see $log)"
    s_fail=$((s_fail + 1))
  fi
  passed=$((passed + s_pass))
  failed=$((failed + s_fail))
done

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "FAIL server: the server exited during the run (see $RESULTS/server.log)"
  failed=$((failed + 1))
fi
stop_server
say "done in $(elapsed); logs in $RESULTS"
finish
