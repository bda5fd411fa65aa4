#!/usr/bin/env bash
# The one command that installs what the tests need and runs every test.
#   bash tests/run-all.sh
# Steps: install prerequisites (tests/setup.sh), check formatting and lints, run the whole test
# suite (unit, integration against the ANS material and real servers), then a short fuzz run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh

if [ -z "${RELAIS_ANS_DIR:-}" ] && [ ! -d ../shared/ans ]; then
  echo "run-all: the ANS material is needed by the tests: put it at ../shared/ans or set RELAIS_ANS_DIR" >&2
  exit 1
fi

# Incremental compilation caches help edit-compile loops, not a whole-suite run; without them
# the build takes a fraction of the disk (it once filled the CI machine's disk).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "== disk before the build: $(df -h --output=avail . | tail -1 | tr -d ' ') free"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== fuzz smoke run"
cargo run --locked -q -p relais-fuzz --bin fuzz-smoke -- --seconds "${RELAIS_FUZZ_SECONDS:-20}"
echo "== disk after the run: $(df -h --output=avail . | tail -1 | tr -d ' ') free, target/ $(du -sh target 2>/dev/null | cut -f1)"
