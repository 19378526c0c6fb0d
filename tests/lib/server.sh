# Sourced by the test runners (tests/api, tests/clients, tests/conformance): the server process
# they start, stopped and waited for in one way. Safe under `set -e`.

# server_stop PID: SIGTERM, then SIGKILL after 5 s (the server's own drain grace is 30 s).
server_stop() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "the server was still draining 5 s after SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  return 0
}

# server_wait_live PID URL PYTHON: status 0 once URL answers 200 (within 15 s), 1 when the
# process exits first or it never does.
server_wait_live() {
  local pid=$1 url=$2 python=$3 probe
  probe='import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)'
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || return 1
    "$python" -c "$probe" "$url" && return 0
    sleep 0.1
  done
  return 1
}
