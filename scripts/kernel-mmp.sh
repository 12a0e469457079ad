#!/usr/bin/env bash
# kernel-mmp.sh - the MMP kernel paper's experiment at the paper's fidelity: the workload of
# scripts/kernel-trace.sh (Debian's current amd64 kernel under QEMU TCG, 19 modules loaded and
# exercised), watched not by ftrace but by QEMU's mmp plugin (crate qemu-plugin/), which sees
# every instruction and every memory access of the guest; then the split of the same modules
# and the replay's report.
#
# Two boots of the same kernel and initramfs, both with nokaslr (so the core kernel's
# addresses are the same in both):
#   1. a short boot loads the modules and writes /proc/kallsyms, for the address of the
#      kernel's load_module (about 20 s);
#   2. the recorded boot runs the whole workload under the plugin, which counts the entries
#      to load_module and learns where each module goes from the loader's own stores (see
#      qemu-plugin/src/map.rs): where modules land depends on timing (freed init memory is
#      taken again or not), so no earlier boot can say.
#   The replay names each load by the module whose /proc/modules address, read at the end of
#   the recorded boot, lies in the load's memory.
#
# Writes into OUT:
#   recording.txt.zst the plugin's recording, zstd-compressed (format:
#                    qemu-plugin/src/recorder.rs; about 115 MB of text for the default run)
#   kallsyms.txt, modules.txt, sections.txt, info.txt, serial.log, kernel-package.txt,
#   modules/         as scripts/kernel-trace.sh writes them (from the recorded boot)
#   stream.bin.zst   the module code's access stream, zstd-compressed: each load, store and
#                    (per translation block) fetch it made, for the PLB and table figures
#   init-symbols.txt the modules' init symbols (kallsyms lines), which kallsyms loses once
#                    each module's init has run
#   symbols.txt      kallsyms.txt and init-symbols.txt together: what the replay names
#                    addresses by
#   layout.json      mmp-split's split of the modules the guest loaded
#   report.json      `mmp-replay kernel-mmp --json`: domain changes, instructions per visit,
#                    call and data policy gaps, PLB and table figures
#   report.txt       the same report as text
#   plots/           its charts (SVG): visits.svg, module_changes.svg, call_gaps.svg,
#                    data_gaps.svg
#   stream.mmpt      the access stream as a trace in our binary format, for
#                    `mmp-replay --layout OUT/layout.json` and `mmp-replay sweep --layout ...`
#
# Needs what scripts/kernel-trace.sh needs (root, a Debian archive) and cargo; installs
# binutils (readelf) when missing. Usage: kernel-mmp.sh OUT
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUT" >&2
    exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/kernel-mmp.XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
# readelf, for the modules' init symbols (QEMU and the rest: scripts/kernel-trace.sh).
if ! command -v readelf >/dev/null; then
    apt-get update
    apt-get install -y --no-install-recommends binutils
fi

(cd "$here" && cargo build --release -p mmp-qemu-plugin -p mmp-split -p mmp-benchmarks --bins)
plugin="$here/target/release/libmmp_qemu_plugin.so"

# One download of the kernel package for both boots.
pkg=${KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')}
if [ -z "$pkg" ]; then
    apt-get update
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
(cd "$work" && apt-get download "$pkg" >/dev/null)
deb=$(ls "$work"/*.deb)

echo "=== first boot (for the address of load_module)"
KERNEL_DEB="$deb" MMP_MODE=place bash "$here/scripts/kernel-trace.sh" "$work/place"

loader=$(awk '$3 == "load_module" && NF == 3 {print $1; exit}' "$work/place/kallsyms.txt")
if [ -z "$loader" ]; then
    echo "$0: the first boot's kallsyms has no load_module" >&2
    exit 1
fi
echo "load_module at $loader"

echo "=== recorded boot (the mmp plugin watching)"
KERNEL_DEB="$deb" MMP_MODE=plugin QEMU_PLUGIN="$plugin,loader=$loader,out=$out/recording.txt,stream=$out/stream.bin" \
    bash "$here/scripts/kernel-trace.sh" "$out"
zstd -q -f --rm "$out/recording.txt" "$out/stream.bin"
if ! grep -q "^load_module$" <(awk -v a="$loader" '$1 == a {print $3}' "$out/kallsyms.txt"); then
    echo "$0: load_module is not at $loader in the recorded boot" >&2
    exit 1
fi

# The modules' init symbols, which /proc/kallsyms drops once a module's init returns: each
# symbol of a .init.* section of the module file, at its section's address in sysfs (written
# at the end of the run; init memory is freed by then, but the addresses are where it was).
: >"$out/init-symbols.txt"
for f in "$out/modules"/*.ko*; do
    n=$(basename "$f"); n=${n%%.ko*}; n=${n//-/_}
    case "$f" in
    *.ko.xz) xz -dc "$f" >"$work/m.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$work/m.ko" ;;
    *) cp "$f" "$work/m.ko" ;;
    esac
    declare -A secaddr=()
    while read -r m sec addr; do
        [ "$m" = "$n" ] && secaddr[$sec]=$addr
    done <"$out/sections.txt"
    declare -A secname=()
    while read -r idx name; do
        secname[$idx]=$name
    done < <(readelf -SW "$work/m.ko" | sed -n 's/^ *\[ *\([0-9]*\)\] \([^ ]*\).*/\1 \2/p')
    readelf -sW "$work/m.ko" | awk '$5 != "" && ($4 == "FUNC" || $4 == "OBJECT") && $7 ~ /^[0-9]+$/ {print $2, $4, $7, $8}' |
        while read -r value type idx name; do
            sec=${secname[$idx]:-}
            case "$sec" in .init*) ;; *) continue ;; esac
            base=${secaddr[$sec]:-}
            [ -n "$base" ] || continue
            letter=t; [ "$type" = OBJECT ] && letter=d
            printf '%x %s %s [%s]\n' $((16#${base#0x} + 16#$value)) "$letter" "$name" "$n"
        done >>"$out/init-symbols.txt"
    unset secaddr secname
done
cat "$out/kallsyms.txt" "$out/init-symbols.txt" >"$out/symbols.txt"
echo "init symbols: $(wc -l <"$out/init-symbols.txt")"

"$here/target/release/mmp-split" --kallsyms "$out/kallsyms.txt" --proc-modules "$out/modules.txt" \
    --out "$out/layout.json" "$out/modules"
judge=("$here/target/release/mmp-replay" kernel-mmp --layout "$out/layout.json"
    --kallsyms "$out/symbols.txt" --proc-modules "$out/modules.txt" --stream "$out/stream.bin.zst" "$out/recording.txt.zst")
"${judge[@]}" --json --trace-out "$out/stream.mmpt" --plot "$out/plots" >"$out/report.json"
"${judge[@]}" | tee "$out/report.txt"
echo "kernel-mmp: $out in $(($(date +%s) - started)) s"
