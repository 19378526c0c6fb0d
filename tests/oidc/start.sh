#!/usr/bin/env bash
# Run the test OpenID Connect issuer on 127.0.0.1:PORT in the foreground, after installing
# its pinned packages when they are missing. It prints "ready <issuer>" once it listens;
# SIGTERM or SIGINT stop it. The authentication tests start it through
# qudag_test_support::oidc::Issuer.
#
# usage: tests/oidc/start.sh PORT       (OIDC_EXTRA_ALGS=ES512,Ed25519: see issuer.mjs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$here/../npm-ci.sh" "$here"
exec "$here/node_modules/.bin/node" "$here/issuer.mjs" "$@"
