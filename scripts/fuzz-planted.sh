#!/usr/bin/env bash
# Shows that the supervisor_ops fuzz target still finds deliberately planted policy bugs:
# builds it with the supervisor's `planted-bugs` feature (in its own target directory, so the
# normal build is untouched) and, for each bug, fuzzes for at most $1 seconds (default 15,
# the CI smoke time) with the flags scripts/fuzz.sh uses, from the target's seed corpus: the
# 64 pseudo-random operation sequences `oracle/examples/op_seeds.rs` writes (a fixed
# generator; nothing in them is aimed at any bug), as every campaign starts. Prints how long
# each took to find, whether while reading the seeds or after how many runs, and what the
# harness reported; fails if any bug is not found.
# With MMP_PLANTED_EMPTY=1 each run starts from an empty corpus instead, so libFuzzer's
# mutations alone must reach the bug: that takes from seconds to over a minute, by its seed.
#   bash scripts/fuzz-planted.sh        # all four bugs, 15 s each at most
#   bash scripts/fuzz-planted.sh 60 chown-ignores-seal
#   MMP_PLANTED_EMPTY=1 bash scripts/fuzz-planted.sh 120
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
shift || true
bugs=("$@")
if [ ${#bugs[@]} -eq 0 ]; then
    bugs=(transitive-grant-widens partial-free-leaves-grants chown-ignores-seal refused-grant-writes)
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
if [ "${MMP_PLANTED_EMPTY:-}" != 1 ]; then
    cargo run -q -p mmp-oracle --example op_seeds -- "$seeds"
fi
cd fuzz
cargo fuzz build -s none --no-trace-compares --features planted-bugs \
    --target-dir target/planted supervisor_ops
bin=$(find target/planted -path '*/release/supervisor_ops' -type f | head -n 1)
failed=0
for bug in "${bugs[@]}"; do
    work=$(mktemp -d)
    mkdir -p "$work/corpus"
    start=$(date +%s%N)
    MMP_PLANTED_BUG="$bug" "$bin" "$work/corpus" "$seeds" -artifact_prefix="$work/" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -len_control=0 -max_len=65536 \
        >"$work/log" 2>&1 || true
    ms=$((($(date +%s%N) - start) / 1000000))
    if ls "$work"/crash-* >/dev/null 2>&1; then
        runs=$(grep -oE '^#[0-9]+' "$work/log" | tail -n 1 | tr -d '#' || true)
        if grep -q INITED "$work/log"; then
            when="after ${runs:-?} runs"
        else
            when="while reading the seeds"
        fi
        what=$(grep -m1 -A1 "panicked at" "$work/log" | tail -n 1 | cut -c1-160 || true)
        echo "found $bug in ${ms} ms ($when): $what"
    else
        echo "NOT found: $bug in $secs s"
        failed=1
    fi
    rm -rf "$work"
done
exit "$failed"
