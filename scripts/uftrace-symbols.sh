#!/usr/bin/env bash
# Writes the symbols of a uftrace recording, for `mmp-replay --uftrace-symbols`: the defined
# dynamic symbols of the program and of each library it loaded, one `OBJECT SYMBOL` pair a
# line, objects named as `uftrace replay --libname` names them (the library file's name) and
# the program as `program`, the program first and the libraries in the order of the
# recording's memory map (where several define a name, the first is taken).
#   bash scripts/uftrace-symbols.sh uftrace.data > symbols.txt
# Needs binutils (nm) and the recorded program and libraries at the paths the recording names.
set -euo pipefail
data="${1:?usage: uftrace-symbols.sh UFTRACE_DATA_DIR}"
[ -f "$data/info" ] || { echo "uftrace-symbols: $data is not a uftrace recording" >&2; exit 1; }
exe=$(grep -a -o 'exename:[^[:space:]]*' "$data/info" | head -1 | cut -d: -f2-)
map=$(ls "$data"/sid-*.map 2>/dev/null | head -1)
[ -n "$map" ] || { echo "uftrace-symbols: $data has no memory map (sid-*.map)" >&2; exit 1; }
# The program first, then every other object in the order of the recording's memory map.
paths=$( (echo "$exe"; awk 'NF >= 6 && $6 ~ /^\// {print $6}' "$map") | awk '!seen[$0]++')
for path in $paths; do
    if [ "$path" = "$exe" ] || [ "$(readlink -f "$path")" = "$(readlink -f "$exe")" ]; then
        name=program
    else
        name=$(basename "$path")
    fi
    nm -D --defined-only "$path" 2>/dev/null |
        awk -v o="$name" 'NF >= 3 && $2 ~ /^[TtWwi]$/ { sub(/@.*/, "", $3); print o, $3 }'
done | awk '!seen[$0]++'
