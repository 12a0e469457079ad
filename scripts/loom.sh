#!/usr/bin/env bash
# Runs the loom models of PLB consistency (plb/tests/loom.rs) in their own target directory,
# since --cfg loom rebuilds every dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target-loom}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
cargo test -p mmp-plb --release --test loom "$@"
