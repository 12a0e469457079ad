#!/usr/bin/env bash
# record-heap-trace.sh - record a real program's memory trace and heap objects in one run:
# Valgrind lackey (--trace-mem=yes) traces every load, store and fetch, while an LD_PRELOAD
# logger (benchmarks/tests/data/heap/heaplog.c) writes each malloc, calloc, realloc and
# free, the program's memory map at start and exit, and the address of the sync word it
# stores to after each record, so the importer lines the two up (format in
# benchmarks/src/import/heap.rs).
#
#   bash scripts/record-heap-trace.sh OUT [PROGRAM.c]
#
# Writes into OUT:
#   trace.txt.xz   lackey's output (xz -9)
#   heap.log       the logger's log (the build directory's path written as ./)
#   info.txt       gcc, valgrind and glibc versions, the program's output
#
# PROGRAM.c defaults to benchmarks/tests/data/heap/wordfreq.c (word counting in a chained
# hash table that grows). Then:
#   cargo run --release --bin mmp-replay -- --heap-log OUT/heap.log --layout-grain fine OUT/trace.txt.xz
#
# Needs gcc, valgrind and xz (installed with apt-get when missing; root). A second or two.
set -euo pipefail

out=${1:?usage: record-heap-trace.sh OUT [PROGRAM.c]}
here=$(cd "$(dirname "$0")/.." && pwd)
prog_src=${2:-$here/benchmarks/tests/data/heap/wordfreq.c}
logger_src=$here/benchmarks/tests/data/heap/heaplog.c

missing=()
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v xz >/dev/null || missing+=(xz-utils)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=$(basename "$prog_src" .c)
gcc -O1 -fPIC -shared -Wall -Wextra -o "$work/heaplog.so" "$logger_src"
gcc -O1 -Wall -Wextra -o "$work/$name" "$prog_src"

cd "$work"
# Only the traced program logs (MMP_HEAP_LOG_PROG): the valgrind launcher loads the
# preload too. --vgdb=no keeps Valgrind's gdb pipe out of the map.
MMP_HEAP_LOG_PROG=$name MMP_HEAP_LOG_FD=3 LD_PRELOAD=$work/heaplog.so \
    valgrind --tool=lackey --trace-mem=yes --vgdb=no --log-file=trace.txt "./$name" \
    3>heap.log >program-output.txt
# The build directory is a temporary one: write it as ./ in the map lines.
sed "s|$work/|./|g" heap.log >"$out/heap.log"
sed -i "s|$work/|./|g" trace.txt
xz -9 -T1 -c trace.txt >"$out/trace.txt.xz"
{
    gcc --version | head -1
    valgrind --version
    ldd --version | head -1
    echo "program: $(basename "$prog_src")"
    echo "output: $(cat program-output.txt)"
    echo "trace lines: $(wc -l <trace.txt), heap records: $(grep -cE '^(malloc|calloc|realloc|free) ' heap.log)"
} >"$out/info.txt"
cat "$out/info.txt"
ls -l "$out"
