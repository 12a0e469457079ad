#!/usr/bin/env bash
# mmp-split's speed over a whole distribution's modules against a `readelf -sW` loop over the
# same files, timed with /usr/bin/time in one session, and its output on all cores against
# the serial run's.
#   bash scripts/debian-kernel.sh deb            # Debian's modules, once
#   bash scripts/split-speed.sh deb              # readelf x3, mmp-split x5 (all cores) and x3 (--jobs 1)
# Before every timed run the files are read once (`cat > /dev/null`), so each tool starts
# from the page cache. Prints each run's wall time, the medians and their ratio; fails if the
# parallel run's report or layout differs from the serial run's by a byte.
set -euo pipefail
dir=${1:?usage: split-speed.sh DIR (from scripts/debian-kernel.sh)}
cd "$(dirname "$0")/.."
cargo build --release -q -p mmp-split
split="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/mmp-split"
tree=$(ls -d "$dir"/lib/modules/*/kernel | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
find "$tree" -name '*.ko*' | sort >"$work/files"
echo "$(wc -l <"$work/files") module files under $tree"
warm() { xargs cat <"$work/files" >/dev/null; }
symvers=()
[ -f "$dir/Module.symvers" ] && symvers=(--symvers "$dir/Module.symvers")
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
time_it() { # label, command...: prints the wall seconds
    local label=$1
    shift
    warm
    /usr/bin/time -f "%e" -o "$work/t" "$@" >/dev/null 2>"$work/err" || true
    echo "  $label: $(cat "$work/t") s" >&2
    cat "$work/t"
}
echo "readelf -sW, one process a file:"
r=$(for _ in 1 2 3; do
    time_it readelf bash -c "while read -r f; do readelf -sW \"\$f\"; done <'$work/files'"
done | median)
echo "mmp-split (all cores: $(nproc)):"
p=$(for i in 1 2 3 4 5; do
    time_it "mmp-split" "$split" "${symvers[@]}" --out "$work/parallel.json" "$tree"
done | median)
"$split" "${symvers[@]}" --out "$work/parallel.json" "$tree" >"$work/parallel.txt" 2>/dev/null || true
echo "mmp-split --jobs 1:"
s=$(for _ in 1 2 3; do
    time_it "mmp-split --jobs 1" "$split" --jobs 1 "${symvers[@]}" --out "$work/serial.json" "$tree"
done | median)
"$split" --jobs 1 "${symvers[@]}" --out "$work/serial.json" "$tree" >"$work/serial.txt" 2>/dev/null || true
cmp "$work/serial.json" "$work/parallel.json"
cmp "$work/serial.txt" "$work/parallel.txt"
echo "identical: the report and the layout ($(wc -c <"$work/serial.json") bytes) of the serial and parallel runs"
awk -v r="$r" -v p="$p" -v s="$s" 'BEGIN {
    printf "medians: readelf loop %.2f s, mmp-split %.2f s (%.1fx faster), mmp-split --jobs 1 %.2f s (%.1fx)\n", r, p, r / p, s, r / s
}'
