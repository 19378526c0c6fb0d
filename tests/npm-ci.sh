#!/usr/bin/env bash
# Install the npm packages pinned in DIR/package-lock.json (Node.js 24 included, through
# the `node` package) with `npm ci`, unless DIR/node_modules already holds exactly them.
# Concurrent calls for one folder install it once. Quiet when there is nothing to do.
#
# usage: tests/npm-ci.sh DIR
# exit status: 0 installed; 2 npm is missing or the install failed (one line on stderr).
set -euo pipefail

dir=$(cd "${1:?usage: tests/npm-ci.sh DIR}" && pwd)
stamp=$dir/node_modules/.qudag-installed
want=$(cat "$dir/package-lock.json" "$dir/package.json" | sha256sum | cut -c1-64)
installed() {
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$dir/node_modules/.bin/node" --version >/dev/null 2>&1
}

installed && exit 0
command -v npm >/dev/null || { echo "npm is needed to install the packages pinned in $dir (tests/run.sh installs it)" >&2; exit 2; }
exec 9>"$dir/.npm-ci.lock"
flock 9
installed && exit 0
echo "npm ci in $dir" >&2
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2 || { echo "npm ci in $dir failed" >&2; exit 2; }
"$dir/node_modules/.bin/node" --version >/dev/null 2>&1 || { echo "the Node.js pinned in $dir did not install" >&2; exit 2; }
echo "$want" >"$stamp"
