#!/usr/bin/env bash
# Run the official MCP conformance suite (pinned in package.json / package-lock.json here)
# against this server's conformance fixture, at both protocol revisions.
#
# usage: tests/conformance/run.sh [REVISION ...]     (default: 2025-11-25 2026-07-28)
#
# Installs the suite when it is missing (tests/npm-ci.sh), builds qudag-mcp with every
# feature, starts `qudag-mcp serve --fixtures conformance` on a free loopback port (plain
# HTTP, authentication off), runs `conformance server --requirements REVISION` once per
# revision, stops the server, and scores each revision with summarize.mjs: one line
# `conformance REVISION: N passed, M failed` each. Results go to $CONFORMANCE_RESULTS
# (default <target dir>/conformance-results): per revision the suite's log and its
# checks.json per scenario, and summary.json; the server's log is server.log.
#
# exit status: 0 every scored scenario of every revision passed; 1 one failed; 2 the
# suite could not be installed or the server did not start.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/server.sh
. "$here/../lib/server.sh"
root=$(cd "$here/../.." && pwd)
if [ "$#" -gt 0 ]; then revisions=("$@"); else revisions=(2025-11-25 2026-07-28); fi
for revision in "${revisions[@]}"; do
  [[ "$revision" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "conformance: '$revision' is not a revision such as 2026-07-28" >&2; exit 2; }
done

target=${CARGO_TARGET_DIR:-$root/target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
results=${CONFORMANCE_RESULTS:-$target/conformance-results}
mkdir -p "$results"
results=$(cd "$results" && pwd)

bash "$root/tests/npm-ci.sh" "$here" || exit 2
node=$here/node_modules/.bin/node
suite=$here/node_modules/@modelcontextprotocol/conformance

# The same feature resolution as `cargo test --workspace --all-features`, so the binary is
# shared with the test build instead of compiled again.
(cd "$root" && cargo build --workspace --all-features --bins --quiet) || { echo "conformance: building the server failed" >&2; exit 2; }
# A link of its own (a copy across file systems): another checkout sharing the target dir
# may build qudag-mcp with other features over target/debug/qudag-mcp while the suite runs.
bin=$results/qudag-mcp
rm -f "$bin"
ln "$target/debug/qudag-mcp" "$bin" 2>/dev/null || cp "$target/debug/qudag-mcp" "$bin"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
url=http://127.0.0.1:$port/mcp
# A full run sends about 300 requests from one address: the rate limit must let them through.
QUDAG_HOST=127.0.0.1 QUDAG_PORT=$port QUDAG_REQUIRE_AUTH=false QUDAG_LOG_FORMAT=json \
  QUDAG_RATE_LIMIT=100000 QUDAG_RATE_LIMIT_BURST=10000 \
  "$bin" serve --fixtures conformance >"$results/server.log" 2>&1 &
server=$!
trap 'server_stop "$server"' EXIT

if ! server_wait_live "$server" "http://127.0.0.1:$port/health/live" python3; then
  echo "conformance: the server did not become live; its log:" >&2
  cat "$results/server.log" >&2
  exit 2
fi

echo "conformance: suite $("$node" -p "require('$suite/package.json').version") on Node.js $("$node" --version), server $url" >&2
for revision in "${revisions[@]}"; do
  out=$results/$revision
  rm -rf -- "$out"
  mkdir -p "$out"
  status=0
  "$node" "$suite/dist/index.js" server --url "$url" --requirements "$revision" -o "$out" >"$out/conformance.log" 2>&1 || status=$?
  echo "$status" >"$out/exit-status"
  echo "conformance: [$revision] the suite exited $status (log: $out/conformance.log)" >&2
done

"$node" "$here/summarize.mjs" "$results" "${revisions[@]}"
