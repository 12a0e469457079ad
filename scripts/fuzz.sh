#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for $1 seconds (default 30); name
# targets after the time to run only those:
#   bash scripts/fuzz.sh 600                      # a campaign: ten minutes each
#   bash scripts/fuzz.sh 10 trace_binary          # one target
# Seeds come from the repo's test data (scripts/fuzz-seeds.sh, into fuzz/seeds/); each
# target's corpus persists in fuzz/corpus/<target>/ and findings go to fuzz/artifacts/
# (all ignored by git). A finding is a panic, an input that runs past 10 s (-timeout), or one
# that takes the process past 2 GiB (-rss_limit_mb); an error value is a fine answer.
# Runs on stable: `-s none` turns off the sanitizer, which only nightly supports. With
# MMP_FUZZ_ASAN=1 (nightly) the build uses AddressSanitizer instead.
# Installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
shift || true
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
bash scripts/fuzz-lock.sh --check
bash scripts/fuzz-seeds.sh
cd fuzz
# --no-trace-compares: the supervisor's harness compares whole states after operations, and
# tracing those compares made each run 10 times slower; the parsers start from seeds that
# already hold their magic numbers.
if [ "${MMP_FUZZ_ASAN:-}" = 1 ]; then
    flags=(+nightly fuzz build -s address --no-trace-compares)
    run=(+nightly fuzz run -s address --no-trace-compares)
else
    flags=(fuzz build -s none --no-trace-compares)
    run=(fuzz run -s none --no-trace-compares)
fi
cargo "${flags[@]}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
for t in "${targets[@]}"; do
    echo "=== $t: $secs s"
    mkdir -p "corpus/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    # -len_control=0: inputs may be long from the start (operation sequences, traces).
    cargo "${run[@]}" "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -len_control=0 -max_len=65536 \
        -print_final_stats=1 2>&1 | grep -E '^(#[0-9]+[[:space:]]+DONE|Done|==[0-9]+==|SUMMARY|.*panicked|.*Test unit written)' || true
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "fuzz: $t has findings in fuzz/artifacts/$t"
        exit 1
    fi
done
