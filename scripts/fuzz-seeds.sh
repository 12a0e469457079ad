#!/usr/bin/env bash
# Builds the seed corpora of the fuzz targets into fuzz/seeds/<target>/ (ignored by git) from
# the repo's own test data: the importers' real tool output (benchmarks/tests/data), the same
# converted to our binary and text forms, modules compiled from fuzz/seed-sources with gcc (and
# xz/zstd copies when those tools are present), the symbol files there, a layout the split
# tool writes from them, the fronts of the real mmp-plugin recordings and access streams, and
# for supervisor_ops 64 pseudo-random operation sequences (oracle/examples/op_seeds.rs).
# Needs gcc and xz; run by scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seeds=fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds"
data=benchmarks/tests/data
cargo build -q --bin mmp-replay --bin mmp-split
bin="${CARGO_TARGET_DIR:-target}/debug"

seed() { mkdir -p "$seeds/$1"; cp "$2" "$seeds/$1/${3:-$(basename "$2")}"; }

for f in "$data"/*.txt; do seed import_detect "$f"; done
for f in "$data"/ftrace-real/*.txt; do seed import_detect "$f"; done
for f in "$data"/ftrace_function*.txt "$data"/ftrace-real/ftrace_{function,lost,pipe,stack}*.txt; do
    seed import_ftrace "$f"
done
for f in "$data"/ftrace_graph*.txt "$data"/ftrace-real/ftrace_graph*.txt; do seed import_ftrace_graph "$f"; done
for f in "$data"/uftrace*.txt "$data"/crossings/*.uftrace.txt; do seed import_uftrace "$f"; done
# a recording's symbols, a NUL, then its output
for s in "$data"/crossings/*.symbols.txt; do
    p=$(basename "$s" .symbols.txt)
    { cat "$s"; printf '\0'; cat "$data/crossings/$p.uftrace.txt"; } > "$seeds/import_uftrace/$p.with-symbols"
done
for f in "$data"/ltrace*.txt; do seed import_ltrace "$f"; done
for f in "$data"/lackey*.txt; do seed import_lackey "$f"; done
# the real heap log alone, and with the front of its lackey trace after a NUL
seed heap_log "$data/heap/heap.log"
{ cat "$data/heap/heap.log"; printf '\0'; (xz -dc "$data/heap/trace.txt.xz" || true) | head -c 200000; } > "$seeds/heap_log/with-trace"
mkdir -p "$seeds/trace_binary" "$seeds/trace_text"
for f in "$data"/*.txt; do
    name=$(basename "$f" .txt)
    "$bin/mmp-replay" convert "$f" -o "$seeds/trace_binary/$name.mmpt" >/dev/null 2>&1 || true
    "$bin/mmp-replay" convert --text "$f" -o "$seeds/trace_text/$name.txt" >/dev/null 2>&1 || true
done
cp "$seeds"/trace_binary/* "$seeds"/trace_text/* "$seeds/import_detect/" 2>/dev/null || true
# trace_replay: a byte picking the table format, then a trace in any form
mkdir -p "$seeds/trace_replay"
for f in "$seeds"/trace_text/*.txt "$seeds"/trace_binary/*.mmpt "$data"/*.txt; do
    for b in 0 1 2; do
        { printf "\\x0$b"; cat "$f"; } > "$seeds/trace_replay/$b-$(basename "$f")"
    done
done

# kernel_mmp: a byte picking the input, then the front of a real recording (0) or access
# stream (3: with its magic; 1: without, the target adds it)
mkdir -p "$seeds/kernel_mmp"
front=$(mktemp)
for f in "$data"/kernel-mmp/*/recording.txt.xz; do
    run=$(basename "$(dirname "$f")")
    xz -dc "$f" >"$front"
    { printf '\x00'; head -c 60000 "$front"; } >"$seeds/kernel_mmp/0-$run-recording.txt"
done
for f in "$data"/kernel-mmp/*/stream.bin.xz; do
    run=$(basename "$(dirname "$f")")
    xz -dc "$f" >"$front"
    { printf '\x03'; head -c 60000 "$front"; } >"$seeds/kernel_mmp/3-$run-stream.bin"
    { printf '\x01'; head -c 60008 "$front" | tail -c +9; } >"$seeds/kernel_mmp/1-$run-stream.bin"
done
rm -f "$front"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/mods" "$seeds/split_module" "$seeds/split_symbols" "$seeds/split_layout"
for c in fuzz/seed-sources/*.c; do
    name=$(basename "$c" .c)
    gcc -c -O1 -fno-pic -fno-asynchronous-unwind-tables -o "$work/mods/$name.ko" "$c"
    cp "$work/mods/$name.ko" "$seeds/split_module/"
    cp "$work/mods/$name.ko" "$seeds/split_symbols/$name.elf"
    if command -v xz >/dev/null; then
        xz --check=crc32 --lzma2=dict=1MiB -c "$work/mods/$name.ko" > "$seeds/split_module/$name.ko.xz"
    fi
    if command -v zstd >/dev/null; then
        zstd -q -c "$work/mods/$name.ko" > "$seeds/split_module/$name.ko.zst"
    fi
done
cp fuzz/seed-sources/System.map fuzz/seed-sources/Module.symvers "$seeds/split_symbols/"
# kallsyms and /proc/modules lines of the real kernel run, and the run's split layout.
cp linux-split-tool/tests/data/kallsyms-excerpt.txt linux-split-tool/tests/data/proc-modules.txt \
    "$seeds/split_symbols/"
xz -dc benchmarks/data/kernel/layout.json.xz > "$seeds/split_layout/kernel-layout.json"
"$bin/mmp-split" --system-map fuzz/seed-sources/System.map --out "$seeds/split_layout/layout.json" \
    "$work/mods" >/dev/null 2>&1 || true
# supervisor_ops: pseudo-random operation sequences from a fixed generator.
cargo run -q -p mmp-oracle --example op_seeds -- "$seeds/supervisor_ops"
echo "seeds in $root/$seeds: $(find "$seeds" -type f | wc -l) files"
