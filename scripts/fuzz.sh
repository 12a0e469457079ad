#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs supervisor_ops for $1 seconds (default 30).
# The corpus persists in fuzz/corpus/ (ignored by git); findings go to fuzz/artifacts/.
# Runs on stable: `-s none` turns off the sanitizer, which only nightly supports; findings are
# the harness's own panics (a disagreement with the reference model or a broken invariant).
# Installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# --no-trace-compares: the harness compares whole states after every operation, and tracing
# those compares made each run 10 times slower. -len_control=0 lets inputs be long sequences
# of operations from the start.
flags=(-s none --no-trace-compares)
cargo fuzz build "${flags[@]}"
cargo fuzz run "${flags[@]}" supervisor_ops -- \
    -max_total_time="$secs" -rss_limit_mb=4096 -len_control=0 -max_len=3000
