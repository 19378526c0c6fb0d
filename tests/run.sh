#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs or starts what the tests need, then runs
# them. Made for Debian 12 (apt-get, as root) with a Rust toolchain, Python >= 3.10 and
# Node.js with npm; elsewhere every missing prerequisite is named on one line instead.
#
# usage: tests/run.sh [STAGE ...]
#   STAGE  any of: prerequisites cargo conformance clients (default: all, in this order;
#          the prerequisites are always seen to first)
#
#   prerequisites  Debian packages the tests call (nginx, PostgreSQL's client, curl,
#                  openssl, npm, Python's venv), installed when missing; Redis and
#                  PostgreSQL on loopback, installed when missing and started when down;
#                  the pinned npm packages (tests/oidc, tests/conformance,
#                  tests/clients/ts, Node.js 24 with each) and the pinned clients of
#                  tests/clients (PyPI, npm, crates.io)
#   cargo          cargo test --workspace --all-features (every test binary, also after a
#                  failing one), with QUDAG_TEST_REDIS_URL and
#                  QUDAG_TEST_DATABASE_URL
#   conformance    tests/conformance/run.sh: the official MCP conformance suite at both
#                  revisions
#   clients        tests/clients/run.sh: real MCP clients (Python, TypeScript, Rust)
#   api            tests/api/run.sh: Schemathesis with every check against /openapi.json of
#                  a running server, and the /docs page in headless Chromium (installs
#                  Chromium, its driver and a pinned venv on first use)
#
# environment:
#   QUDAG_TEST_REDIS_URL     the test Redis (default redis://127.0.0.1:6379, started here)
#   QUDAG_TEST_DATABASE_URL  the test PostgreSQL, where tests create schemas and databases
#                            (default postgres://postgres@127.0.0.1:5432/test, started here)
#   CARGO_TARGET_DIR         cargo's target dir (default target/ in the clone)
#
# Every stage runs even when one before it failed. Ends with one line per stage and
# `tests: N passed, M failed` (cargo's tests, conformance scenarios and client checks).
# exit status: 0 everything passed; 1 something failed; 2 a prerequisite is missing.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export QUDAG_TEST_REDIS_URL=${QUDAG_TEST_REDIS_URL:-redis://127.0.0.1:6379}
export QUDAG_TEST_DATABASE_URL=${QUDAG_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
export DEBIAN_FRONTEND=noninteractive

# The stages, in order: a function `stage_NAME` each, which adds its counts with `record`.
STAGES=(cargo conformance clients api)

case "${1:-}" in -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
selected=()
for stage in "$@"; do
  case " prerequisites ${STAGES[*]} " in *" $stage "*) ;; *) echo "tests/run.sh: unknown stage '$stage' (known: prerequisites ${STAGES[*]})" >&2; exit 2 ;; esac
  [ "$stage" = prerequisites ] || selected+=("$stage")
done
[ "$#" -gt 0 ] || selected=("${STAGES[@]}")

started=$SECONDS
step() { printf '\n==> %s [%ds]\n' "$*" "$((SECONDS - started))"; }
missing() { # one line naming what is missing, then stop
  echo "tests/run.sh: missing prerequisite: $*" >&2
  exit 2
}

# ---- prerequisites -----------------------------------------------------------------------

apt_updated=0
apt_install() { # Debian packages, as root
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    missing "$* (Debian packages; run this as root on Debian to have them installed)"
  fi
  echo "installing Debian packages: $*"
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq >/dev/null || missing "$* (apt-get update failed)"
    apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null || missing "$* (apt-get install failed)"
}

has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

debian_packages() {
  local wanted=()
  has nginx || wanted+=(nginx)            # the multi-node tests put it in front of three nodes
  has psql || wanted+=(postgresql-client) # the tests make and drop databases with it
  has curl || wanted+=(curl)
  has openssl || wanted+=(openssl)
  has npm || wanted+=(npm)
  has python3 || wanted+=(python3)
  if has python3 && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then wanted+=(python3-venv); fi
  has cargo || missing "cargo (a Rust toolchain, 1.94 or newer: https://rustup.rs)"
  if [ "${#wanted[@]}" -gt 0 ]; then
    apt_install "${wanted[@]}"
    # Debian's nginx starts its default site on install; the tests run nginx of their own.
    if [[ " ${wanted[*]} " == *" nginx "* ]]; then nginx -s quit 2>/dev/null || true; fi
    for program in nginx psql curl openssl npm python3; do
      has "$program" || missing "$program (still missing after apt-get install ${wanted[*]})"
    done
  fi
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || missing "python3 >= 3.10 (found $(python3 --version 2>&1))"
}

redis() {
  redis-cli -u "$QUDAG_TEST_REDIS_URL" ping >/dev/null 2>&1 && return
  if [ "$QUDAG_TEST_REDIS_URL" != redis://127.0.0.1:6379 ]; then
    missing "Redis at QUDAG_TEST_REDIS_URL=$QUDAG_TEST_REDIS_URL (it does not answer)"
  fi
  has redis-server || apt_install redis-server
  echo "starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do redis-cli -u "$QUDAG_TEST_REDIS_URL" ping >/dev/null 2>&1 && return; sleep 0.1; done
  missing "Redis on 127.0.0.1:6379 (redis-server did not answer after starting)"
}

postgres() {
  local url=$QUDAG_TEST_DATABASE_URL default=postgres://postgres@127.0.0.1:5432/test fresh=0 version
  psql "$url" -qAtc 'SELECT 1' >/dev/null 2>&1 && return
  [ "$url" = "$default" ] || missing "PostgreSQL at QUDAG_TEST_DATABASE_URL=$url ($(psql "$url" -c '' 2>&1 | head -n1))"
  if ! pg_isready -q -d "$url" 2>/dev/null; then
    if ! has pg_ctlcluster || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
      apt_install postgresql
      fresh=1
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    echo "starting PostgreSQL $version on 127.0.0.1:5432"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    for _ in $(seq 1 50); do pg_isready -q -d "$url" && break; sleep 0.2; done
    pg_isready -q -d "$url" || missing "PostgreSQL on 127.0.0.1:5432 (cluster $version main did not start)"
    if [ "$fresh" -eq 1 ]; then
      # A server installed just now, for the tests: the postgres role may connect over
      # loopback without a password, as the default URL does.
      local hba=/etc/postgresql/$version/main/pg_hba.conf
      sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    fi
  fi
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- psql -qAtc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null | grep -q 1; then
    echo "creating the database test"
    runuser -u postgres -- createdb test 2>/dev/null || true
  fi
  psql "$url" -qAtc 'SELECT 1' >/dev/null 2>&1 ||
    missing "PostgreSQL at $url ($(psql "$url" -c '' 2>&1 | head -n1))"
}

pinned_packages() {
  local dir
  for dir in tests/oidc tests/conformance tests/clients/ts; do
    bash tests/npm-ci.sh "$dir" || missing "the npm packages pinned in $dir (see the line above)"
  done
  bash tests/clients/run.sh --install || missing "the pinned clients of tests/clients (see the lines above)"
}

step "prerequisites: Debian packages"
debian_packages
step "prerequisites: Redis ($QUDAG_TEST_REDIS_URL)"
redis
step "prerequisites: PostgreSQL ($QUDAG_TEST_DATABASE_URL)"
postgres
step "prerequisites: pinned npm, PyPI and crates.io packages"
pinned_packages

# ---- stages ------------------------------------------------------------------------------

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
total_passed=0
total_failed=0
status=0
record() { # stage label, passed, failed, stage exit status
  summary+=("$1: $2 passed, $3 failed")
  total_passed=$((total_passed + $2))
  total_failed=$((total_failed + $3))
  if [ "$4" -ne 0 ] && [ "$3" -eq 0 ]; then
    summary+=("  $1 exited with status $4")
    total_failed=$((total_failed + 1))
  fi
  [ "$4" -eq 0 ] || status=1
}

stage_cargo() {
  step "cargo test --workspace --all-features --no-fail-fast"
  cargo test --workspace --all-features --no-fail-fast 2>&1 | tee "$logs/cargo.log"
  local code=${PIPESTATUS[0]} passed failed
  # One `test result: ok. N passed; M failed; ...` line per test binary and doc-test run.
  passed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) passed; .*/\1/p' "$logs/cargo.log" | awk '{ n += $1 } END { print n + 0 }')
  failed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) failed; .*/\1/p' "$logs/cargo.log" | awk '{ n += $1 } END { print n + 0 }')
  record "cargo test" "${passed:-0}" "${failed:-0}" "$code"
}

stage_conformance() {
  step "MCP conformance suite (tests/conformance/run.sh)"
  bash tests/conformance/run.sh 2>&1 | tee "$logs/conformance.log"
  local code=${PIPESTATUS[0]} line failed=0
  # One `conformance REVISION: N passed, M failed` line per revision.
  while IFS= read -r line; do
    if [[ "$line" =~ ^(conformance\ [0-9-]+):\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
      record "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" 0
      failed=$((failed + BASH_REMATCH[3]))
    fi
  done <"$logs/conformance.log"
  if [ "$code" -ne 0 ]; then
    status=1
    [ "$failed" -gt 0 ] || record conformance 0 0 "$code"
  fi
}

# Run a runner script whose last count line reads `LABEL: N passed, M failed`, and record it.
counted() { # label, log name, script
  bash "$3" 2>&1 | tee "$logs/$2.log"
  local code=${PIPESTATUS[0]} line passed=0 failed=0
  line=$(grep "^$1: [0-9]* passed, [0-9]* failed" "$logs/$2.log" | tail -n1)
  if [[ "$line" =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=${BASH_REMATCH[1]} failed=${BASH_REMATCH[2]}
  fi
  record "$1" "$passed" "$failed" "$code"
}

stage_clients() {
  step "real MCP clients (tests/clients/run.sh)"
  counted clients clients tests/clients/run.sh
}

stage_api() {
  step "API contract: Schemathesis and the docs page (tests/api/run.sh)"
  counted "api contract" api tests/api/run.sh
}

for stage in "${selected[@]}"; do "stage_$stage"; done

printf '\n'
for line in "${summary[@]}"; do echo "$line"; done
echo "tests/run.sh: ${SECONDS}s in all"
echo "tests: $total_passed passed, $total_failed failed"
exit "$status"
