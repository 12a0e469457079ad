#!/usr/bin/env bash
# kernel-mmp-sample.sh RUN DEST - the test data of benchmarks/tests/kernel_mmp.rs from a run
# of scripts/kernel-mmp.sh: its recording, access stream, /proc/modules and layout as they
# are (xz-compressed), and the
# lines of its symbols (kallsyms and init-symbols.txt) that the judging reads: every module
# symbol, and of the core kernel's only, for each address the recording names, the nearest
# symbol at or below it (all symbols at that address). With SUMMARY=1 the recording keeps
# only its header, visits and domain changes (no access records: a full run has millions),
# and the access stream is left out.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 RUN DEST" >&2
    exit 2
fi
run=$1
dest=$2
mkdir -p "$dest"
rec=$(mktemp)
trap 'rm -f "$rec" "$rec".*' EXIT
zstd -qdc "$run/recording.txt.zst" >"$rec"
if [ "${SUMMARY:-}" = 1 ]; then
    grep -v '^access ' "$rec" >"$rec.kept"
else
    cp "$rec" "$rec.kept"
fi
xz -9 -c "$rec.kept" >"$dest/recording.txt.xz"
if [ "${SUMMARY:-}" != 1 ] && [ -f "$run/stream.bin.zst" ]; then
    zstd -qdc "$run/stream.bin.zst" | xz -9 >"$dest/stream.bin.xz"
fi
cp "$run/modules.txt" "$dest/modules.txt"
xz -9 -c "$run/layout.json" >"$dest/layout.json.xz"
# Addresses the recording names (16 hex digits compare as strings), then the symbols.
awk '$1 == "change" {print $4; print $5} $1 == "access" {print $3; if ($5 !~ /^@/) print $5}' "$rec.kept" |
    sort -u >"$rec.addrs"
cat "$run/kallsyms.txt" "$run/init-symbols.txt" >"$rec.syms"
{
    awk 'NF == 4' "$rec.syms"
    # Core symbols, sorted with the addresses (a symbol before an address at the same value):
    # each address takes the last symbol address seen, all of whose lines are kept.
    { awk 'NF == 3 {print $1, 0, $0}' "$rec.syms"; awk '{print $1, 1}' "$rec.addrs"; } |
        sort -k1,1 -k2,2n -s |
        awk '$2 == 0 { if ($1 != at) { at = $1; n = 0 } l = $0; sub(/^[^ ]+ [^ ]+ /, "", l); line[n++] = l; next }
             at != "" && !(at in done) { done[at] = 1; for (i = 0; i < n; i++) print line[i] }'
} >"$dest/symbols.txt"
xz -9 -f "$dest/symbols.txt"
ls -la "$dest"
