#!/usr/bin/env bash
# How many times more inputs a second the supervisor_ops fuzz target runs than it did at an
# older commit, on the same inputs:
#   bash scripts/fuzz-speedup.sh DIR [BASE]
# DIR holds the inputs (a corpus, such as fuzz/corpus/supervisor_ops after a campaign). BASE
# defaults to 37434af, the last commit whose harness compared the whole state of the
# supervisor and its model after every operation. The script builds the target at BASE (in a
# temporary git worktree, so it needs the repository's history) and at the working tree,
# both with the flags scripts/fuzz.sh uses, then runs each binary once over every input in DIR
# (libFuzzer's -runs=0: no mutation, so both run exactly the same inputs, each cut to the
# same -max_len=3000 bytes that BASE's campaigns used) and times it with /usr/bin/time,
# FUZZ_SPEEDUP_RUNS times each (default 3; a run of a few seconds moves by a second with what
# else the machine does), and prints each wall time, the medians' inputs a second, and their
# ratio. The older harness is slow: about 20 inputs a second on a campaign's inputs, so 3,000
# inputs take some two and a half minutes a run.
# Installs cargo-fuzz if it is missing.
set -euo pipefail
dir=${1:?usage: fuzz-speedup.sh DIR [BASE]}
base=${2:-37434af}
dir=$(cd "$dir" && pwd)
cd "$(dirname "$0")/.."
root=$(pwd)
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
n=$(find "$dir" -maxdepth 1 -type f | wc -l)
[ "$n" -gt 0 ] || { echo "fuzz-speedup: no inputs in $dir" >&2; exit 1; }
work=$(mktemp -d)
cleanup() {
    git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
git worktree add -q --detach "$work/base" "$base"
flags=(-s none --no-trace-compares)
build() { # checkout copy: builds the target in the checkout's own fuzz/target, copies it
    (cd "$1/fuzz" && env -u CARGO_TARGET_DIR cargo fuzz build "${flags[@]}" supervisor_ops >&2)
    cp "$(find "$1/fuzz/target" -path '*/release/supervisor_ops' -type f | head -n 1)" "$2"
}
new=$work/supervisor_ops.new
old=$work/supervisor_ops.base
build "$root" "$new"
build "$work/base" "$old"
[ -x "$new" ] && [ -x "$old" ] || { echo "fuzz-speedup: a build failed" >&2; exit 1; }
run() { # label binary: prints the wall seconds
    /usr/bin/time -f "%e" -o "$work/t" "$2" -runs=0 -max_len=3000 -rss_limit_mb=4096 "$dir" \
        >"$work/log" 2>&1 || { tail -n 20 "$work/log" >&2; exit 1; }
    echo "  $1: $(grep -E '^Done' "$work/log" || true), $(cat "$work/t") s wall" >&2
    cat "$work/t"
}
runs=${FUZZ_SPEEDUP_RUNS:-3}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "$n inputs in $dir, $runs runs each"
t_new=$(for _ in $(seq "$runs"); do run "working tree" "$new"; done | median)
t_old=$(for _ in $(seq "$runs"); do run "$base" "$old"; done | median)
awk -v n="$n" -v a="$t_new" -v b="$t_old" -v base="$base" 'BEGIN {
    printf "medians: working tree %.2f s (%.0f inputs/s), %s %.2f s (%.1f inputs/s): %.1fx\n", a, n / a, base, b, n / b, b / a
}'
