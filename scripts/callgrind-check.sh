#!/usr/bin/env bash
# Instructions per access check on a PLB hit and on a PLB miss, counted by callgrind, which
# repeats exactly from run to run (wall-clock time on this kind of machine does not). Runs
# benchmarks/examples/check_cost.rs, the `check` bench's plb_hit_seq and walk_random streams,
# and divides the instructions inside its counted sweeps by the checks they made (and the
# conditional branches callgrind's branch simulation mispredicts). Then the `replay`
# bench's replay_memrefs and decode_only (benchmarks/examples/replay_cost.rs): instructions
# per event inside the binary reader's loop, and their ratio.
#   bash scripts/callgrind-check.sh [SWEEPS]      (default 20; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
sweeps="${1:-20}"
command -v valgrind >/dev/null || { echo "callgrind-check: valgrind is not installed"; exit 1; }
cargo build --release -q -p mmp-benchmarks --example check_cost --example replay_cost
bin="${CARGO_TARGET_DIR:-target}/release/examples/check_cost"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for mode in hit miss; do
    # With callgrind's branch simulation: its events are then Ir Bc Bcm Bi Bim, and the
    # mispredicted conditional branches (Bcm) show a verdict or a walk that branches on data.
    said=$(valgrind --tool=callgrind --branch-sim=yes --callgrind-out-file="$out" \
        --toggle-collect='*check_cost::counted*' "$bin" "$mode" "$sweeps" 2>/dev/null)
    read -r total mispredicted < <(grep -E '^(summary|totals):' "$out" | tail -1 | awk '{print $2, $4}')
    checks=$(echo "$said" | awk '{print $2}')
    awk -v m="$mode" -v t="$total" -v b="$mispredicted" -v n="$checks" \
        'BEGIN { printf "%s: %d instructions over %d checks = %.2f a check (%.3f mispredicted branches a check)\n", m, t, n, t / n, b / n }'
done
rbin="${CARGO_TARGET_DIR:-target}/release/examples/replay_cost"
for mode in decode replay; do
    said=$(valgrind --tool=callgrind --callgrind-out-file="$out" \
        --toggle-collect='*BinaryReader*for_each*' "$rbin" "$mode" 2>/dev/null)
    total=$(grep -E '^(summary|totals):' "$out" | tail -1 | awk '{print $2}')
    events=$(echo "$said" | awk '{print $2}')
    echo "$mode $total $events"
done | awk '{ per[$1] = $2 / $3; printf "%s: %d instructions over %d events = %.2f an event\n", $1, $2, $3, $2 / $3 }
    END { printf "replay / decode: %.2f\n", per["replay"] / per["decode"] }'
