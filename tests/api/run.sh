#!/usr/bin/env bash
# The HTTP API's contract: Schemathesis against /openapi.json of a running server, with every
# check, and the docs page (/docs) in headless Chromium.
#
# usage: tests/api/run.sh
#
# Installs what it needs when missing (Chromium and its driver from Debian, a venv with the
# pinned requirements.txt, hashes checked), builds the server (cargo build --workspace
# --all-features --bins), starts `qudag-mcp serve --dev` on a free loopback port, mints an
# admin token (`qudag-mcp dev-token --role admin`), then runs:
#   1. schemathesis run --checks all --mode all (positive and negative data) over the
#      examples, coverage, fuzzing and stateful phases, at most $QUDAG_API_MAX_EXAMPLES
#      test cases per operation and phase, failing on any finding or warning;
#   2. docs_page.py: every operation of the document renders on /docs, "Authorize" is there
#      and works.
# It stops the server and ends with `api contract: N passed, M failed`.
#
# environment:
#   QUDAG_API_CACHE         where the venv lives (default $HOME/.cache/qudag-mcp/api)
#   QUDAG_API_RESULTS       the server log, the JUnit report, a screenshot of /docs
#                           (default $CARGO_TARGET_DIR/api-results, else tests/api/results)
#   QUDAG_API_MAX_EXAMPLES  test cases per operation and phase (default 500: about a minute)
#   QUDAG_API_TIMEOUT       seconds Schemathesis may run before it is stopped (default 900)
#   QUDAG_API_SEED          Schemathesis seed, to replay a run (default: a new one, printed)
#   QUDAG_MCP_BIN           use this server binary instead of building one
#   PYTHON                  the Python (>= 3.10) to make the venv with (default python3)
#
# exit status: 0 when both checks passed; 1 when Schemathesis or the docs page found
# something; 2 when setup failed (install, build, server start).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/server.sh
. "$HERE/../lib/server.sh"
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${QUDAG_API_CACHE:-${HOME:-/tmp}/.cache/qudag-mcp/api}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
case "$TARGET" in /*) ;; *) TARGET="$REPO/$TARGET" ;; esac
RESULTS=${QUDAG_API_RESULTS:-${CARGO_TARGET_DIR:+$TARGET/api-results}}
RESULTS=${RESULTS:-$HERE/results}
MAX_EXAMPLES=${QUDAG_API_MAX_EXAMPLES:-500}
TIMEOUT=${QUDAG_API_TIMEOUT:-900}
PYTHON=${PYTHON:-python3}
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

case "${1:-}" in -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

T0=$(date +%s)
say() { echo "api: $* [$(( $(date +%s) - T0 ))s]" >&2; }
setup_failed() { echo "api: $*" >&2; echo "api contract: 0 passed, 1 failed"; exit 2; }

mkdir -p "$CACHE" "$RESULTS" || setup_failed "cannot create $CACHE or $RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

# ---- 1. prerequisites -----------------------------------------------------------------
apt_install() { # packages...: Debian's, as root
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >"$RESULTS/apt.log" 2>&1
}
if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  say "Chromium or its driver is missing; installing Debian's chromium and chromium-driver"
  apt_install chromium chromium-driver || setup_failed "could not install chromium chromium-driver (see $RESULTS/apt.log)"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null ||
  setup_failed "need Python >= 3.10 as \$PYTHON ($PYTHON)"
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  say "Python's venv module is missing; installing Debian's python3-venv"
  apt_install python3-venv || setup_failed "could not install python3-venv (see $RESULTS/apt.log)"
fi

# ---- 2. the venv (made again when requirements.txt or the Python changes) --------------
VENV=$CACHE/venv
want=$(cat "$HERE/requirements.txt" <("$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-64)
if [ "$want" != "$(cat "$VENV/.qudag-installed" 2>/dev/null)" ]; then
  say "installing Schemathesis and Selenium (requirements.txt, hashes checked) into $VENV"
  rm -rf "$VENV"
  { "$PYTHON" -m venv "$VENV" &&
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      --require-hashes -r "$HERE/requirements.txt" &&
    "$VENV/bin/python" -m pip check --disable-pip-version-check; } >"$RESULTS/install.log" 2>&1 ||
    { tail -n 20 "$RESULTS/install.log" >&2; setup_failed "pip install -r requirements.txt failed (see $RESULTS/install.log)"; }
  echo "$want" >"$VENV/.qudag-installed"
fi

# ---- 3. the server ---------------------------------------------------------------------
BIN=$RESULTS/qudag-mcp
if [ -n "${QUDAG_MCP_BIN:-}" ]; then
  cp "$QUDAG_MCP_BIN" "$BIN" || setup_failed "no server binary at $QUDAG_MCP_BIN"
else
  say "building the server (cargo build --workspace --all-features --bins)"
  (cd "$REPO" && cargo build --workspace --all-features --bins) >"$RESULTS/build.log" 2>&1 ||
    { tail -n 30 "$RESULTS/build.log" >&2; setup_failed "cargo build failed (see $RESULTS/build.log)"; }
  # A copy, so another build into the same target dir cannot swap the binary mid-run.
  cp "$TARGET/debug/qudag-mcp" "$BIN" || setup_failed "no server binary at $TARGET/debug/qudag-mcp"
fi

export QUDAG_DEV_KEY_PATH=$RESULTS/dev.key
rm -f "$QUDAG_DEV_KEY_PATH"
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
  setup_failed "could not pick a free port"
BASE=http://127.0.0.1:$PORT
say "starting qudag-mcp serve --dev on 127.0.0.1:$PORT"
QUDAG_HOST=127.0.0.1 QUDAG_PORT=$PORT QUDAG_LOG_FORMAT=json \
  QUDAG_RATE_LIMIT=100000 QUDAG_RATE_LIMIT_BURST=10000 \
  "$BIN" serve --dev >"$RESULTS/server.log" 2>&1 &
SERVER_PID=$!
stop_server() { server_stop "$SERVER_PID"; }
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM
server_wait_live "$SERVER_PID" "$BASE/health/live" "$PYTHON" ||
  { tail -n 20 "$RESULTS/server.log" >&2; setup_failed "the server did not become live (see $RESULTS/server.log)"; }
QUDAG_API_TOKEN=$("$BIN" dev-token --role admin) || setup_failed "qudag-mcp dev-token --role admin failed"
export QUDAG_API_TOKEN

# ---- 4. the checks ---------------------------------------------------------------------
passed=0
failed=0
count() { if [ "$1" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }

say "schemathesis: every check, positive and negative data, at most $MAX_EXAMPLES cases per operation"
st=(timeout -k 10 "$TIMEOUT" "$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run "$BASE/openapi.json"
  --checks all --mode all --phases examples,coverage,fuzzing,stateful
  --max-examples "$MAX_EXAMPLES" --continue-on-failure --generation-database none
  --request-timeout 10 --report junit --report-junit-path "$RESULTS/schemathesis.xml" --no-color)
[ -n "${QUDAG_API_SEED:-}" ] && st+=(--seed "$QUDAG_API_SEED")
# From the results folder, where Schemathesis keeps its own state (.schemathesis/).
(cd "$RESULTS" && "${st[@]}") 2>&1 | tee "$RESULTS/schemathesis.log"
status=${PIPESTATUS[0]}
echo "$([ "$status" = 0 ] && echo PASS || echo FAIL) schemathesis (exit status $status; see $RESULTS/schemathesis.log)"
count "$status"

say "the docs page in headless Chromium"
"$VENV/bin/python" "$HERE/docs_page.py" --base "$BASE" --token "$QUDAG_API_TOKEN" \
  --chromium "$CHROMIUM" --chromedriver "$CHROMEDRIVER" --screenshot "$RESULTS/docs.png" 2>&1 |
  tee "$RESULTS/docs-page.log"
count "${PIPESTATUS[0]}"

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "FAIL the server exited during the run (see $RESULTS/server.log)"
  failed=$((failed + 1))
fi
stop_server
say "done; logs in $RESULTS"
echo "api contract: $passed passed, $failed failed"
[ "$failed" = 0 ]
