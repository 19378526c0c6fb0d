#!/usr/bin/env bash
# Build every fuzz target and run each one briefly (CI), or longer (a campaign); fails when
# any target crashes, hangs or runs out of memory. A crashing input is kept under
# fuzz/artifacts/<target>/ (see fuzz/README.md for reproducing it).
#
#   fuzz/run.sh [SECONDS per target, default 20] [TARGET...]   (default: every target)
#
# Needs the nightly toolchain (FUZZ_TOOLCHAIN, default `nightly`); installs the pinned
# cargo-fuzz when it is missing. The committed corpus (fuzz/corpus/<target>) seeds each
# run and is not modified: what a run finds goes to a scratch directory (FUZZ_WORK_DIR,
# default a temporary one, removed at the end unless FUZZ_WORK_DIR is given).
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
seconds="${1:-20}"
shift || true

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# Safe Rust needs no sanitizer to turn memory errors into crashes; what we look for are
# panics, including integer overflow (debug assertions on), hangs and unbounded memory.
flags=(--sanitizer none --debug-assertions)
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  flags+=(--target-dir "$CARGO_TARGET_DIR")
fi

# Which dictionaries (fuzz/dict/*.dict) each target gets.
dictionaries() {
  case "$1" in
    mcp_classify) echo json mcp headers ;;
    mcp_engine) echo json mcp ;;
    mcp_param_headers) echo headers json ;;
    jwt | dpop) echo jose json ;;
    circuit) echo circuit json ;;
    audit_verify) echo audit json ;;
    last_event_id) echo last_event_id ;;
  esac
}

build_start=$(date +%s)
cargo +"$toolchain" fuzz build "${flags[@]}"
echo "==> built every fuzz target in $(($(date +%s) - build_start)) s"

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +"$toolchain" fuzz list)
fi

if [ -n "${FUZZ_WORK_DIR:-}" ]; then
  work="$FUZZ_WORK_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi

failed=()
for target in "${targets[@]}"; do
  mkdir -p "$work/corpus/$target" corpus/"$target"
  dict=()
  names=$(dictionaries "$target")
  if [ -n "$names" ]; then
    for name in $names; do cat "dict/$name.dict"; done >"$work/$target.dict"
    dict=(-dict="$work/$target.dict")
  fi
  echo "==> $target: ${seconds} s"
  # New inputs go to the first directory (scratch); the committed corpus only seeds.
  if ! cargo +"$toolchain" fuzz run "${flags[@]}" "$target" "$work/corpus/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "${dict[@]}"; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz targets that failed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "==> every fuzz target ran ${seconds} s without a crash"
