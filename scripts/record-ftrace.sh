#!/usr/bin/env bash
# record-ftrace.sh - record real Linux ftrace text output (the tracefs `trace` and
# `trace_pipe` files) from Debian's current amd64 kernel booted under QEMU.
#
# What it records (one file per capture in OUTDIR, plus the full serial log):
#   info.txt            uname, CPUs, available tracers, trace options, loaded modules
#   function.txt        `trace` after the `function` tracer ran over a small workload
#   function_symoff.txt the same with options/sym-offset=1 (`func+0x0/0x50 [module]`)
#   graph.txt           `trace` after `function_graph` (default options: funcgraph-irqs=1,
#                       funcgraph-proc=0)
#   graph_proc.txt      `trace` after `function_graph` with funcgraph-proc=1 and
#                       funcgraph-abstime=1
#   stack.txt           `trace` after `function` with func_stack_trace=1, filtered to the
#                       functions of the loop module plus dummy_get_stats64 (`=> ` lines)
#   pipe.txt            `trace_pipe` (consuming read) after `function` overflowed the buffer
#                       (CPU:N [LOST n EVENTS] lines)
#   live.txt            first lines of `trace` read while `function` keeps tracing
#                       (options/pause-on-trace=0)
#   nop.txt             `trace` of the `nop` tracer holding a single trace_marker write
#   serial.log          the whole serial console, carriage returns stripped
# The workload loads two dependency-free modules from the kernel package (loop, dummy) and
# exercises them (losetup and a one-byte read of /dev/loop0; ping over dummy0; a read of
# dummy0's statistics in sysfs). Module functions show up as `func [loop]` in function_graph
# output and with sym-offset; the plain function tracer prints bare names. Writes to
# trace_marker ("workload start", "workload modules", "workload end") mark the workload.
# Per-CPU buffer: 64 KB (buffer_size_kb then reads 67), 2 CPUs, function_graph irq markers
# enabled (the default) but this kernel traces nothing in its irqentry text.
#
# Needs: root (apt-get), network access to a Debian archive, about 250 MB of disk.
# Takes: about 1 minute in all on a 2-core machine (download of the ~70 MB kernel package,
# then ~45 s of QEMU TCG boot, tracing and serial output); slow machines get up to 15
# minutes (the QEMU timeout). No KVM needed; USE_KVM=1 adds -enable-kvm.
#
# Usage: record-ftrace.sh OUTDIR
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/record-ftrace.XXXXXX)
trap 'rm -rf "$work"' EXIT

export DEBIAN_FRONTEND=noninteractive
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# The initramfs needs the statically linked busybox (package busybox-static, /bin/busybox).
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
command -v cpio >/dev/null || need+=(cpio)
command -v modinfo >/dev/null || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update
    apt-get install -y --no-install-recommends "${need[@]}"
fi

# --- the kernel: the package the linux-image-amd64 metapackage currently points to ---
pkg=${KERNEL_PKG:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')}
if [ -z "$pkg" ]; then
    apt-get update
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
fi
(cd "$work" && apt-get download "$pkg")
deb=$(ls "$work"/*.deb)
echo "kernel package: $(basename "$deb")"
dpkg-deb -x "$deb" "$work/kern"
kver=$(ls "$work/kern/lib/modules" | head -n 1)
vmlinuz="$work/kern/boot/vmlinuz-$kver"

# --- the initramfs ---
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,mods}
cp /bin/busybox "$root/bin/busybox"
for m in drivers/block/loop drivers/net/dummy; do
    src=$(ls "$work/kern/lib/modules/$kver/kernel/$m".ko* | head -n 1)
    dst="$root/mods/$(basename "$m").ko"
    case "$src" in
    *.ko.xz) xz -dc "$src" >"$dst" ;;
    *.ko.zst) zstd -qdc "$src" >"$dst" ;;
    *.ko.gz) gzip -dc "$src" >"$dst" ;;
    *) cp "$src" "$dst" ;;
    esac
    deps=$(modinfo -F depends "$dst")
    if [ -n "$deps" ]; then
        echo "$0: module $m depends on $deps; pick another one" >&2
        exit 1
    fi
done
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
exec </dev/console >/dev/console 2>&1
echo 1 >/proc/sys/kernel/printk
T=/sys/kernel/tracing

insmod /mods/loop.ko
insmod /mods/dummy.ko numdummies=1
ip link set lo up
ip link set dummy0 up
ip addr add 10.9.9.1/24 dev dummy0
dd if=/dev/zero of=/tmp/img bs=1024 count=256 2>/dev/null
echo 0 >$T/tracing_on
echo 64 >$T/buffer_size_kb

begin() { echo "===FTRACE-$1-BEGIN==="; }
end() { echo "===FTRACE-$1-END==="; }

begin info
uname -a
echo "cpus: $(nproc)"
echo "buffer_size_kb: $(cat $T/buffer_size_kb)"
echo "available_tracers: $(cat $T/available_tracers)"
echo "trace_clock: $(cat $T/trace_clock)"
cat /proc/modules
cat $T/trace_options
echo "irqentry text (functions here get ==========> markers in function_graph):"
awk '$3 == "__irqentry_text_start" || $3 == "__softirqentry_text_start" {p = 1} p {print} $3 == "__irqentry_text_end" || $3 == "__softirqentry_text_end" {p = 0}' /proc/kallsyms
end info

# The workload. The module exercise comes last, with shell builtins only (no fork/exec),
# so that it survives the overwrites of the small ring buffer.
work() {
    echo "workload start" >$T/trace_marker
    ls / >/dev/null
    cat /proc/version >/dev/null
    ping -c 1 -W 1 10.9.9.2 >/dev/null 2>&1     # dummy_xmit [dummy]
    losetup /dev/loop0 /tmp/img                  # lo_ioctl, loop_configure [loop]
    echo "workload modules" >$T/trace_marker
    read -r x </sys/class/net/dummy0/statistics/tx_packets   # dummy_get_stats64 [dummy]
    read -r -n 1 x </dev/loop0                   # lo_ioctl, loop_queue_rq, lo_release [loop]
    echo "workload end" >$T/trace_marker
}
unwork() { losetup -d /dev/loop0; }
run() { # tracer capture-name
    echo 0 >$T/tracing_on
    echo "$1" >$T/current_tracer
    echo >$T/trace
    echo 1 >$T/tracing_on
    work
    echo 0 >$T/tracing_on
    unwork
    begin "$2"
    cat $T/trace
    end "$2"
}

run function function
# Module names ("[loop]") show in the function tracer only with sym-offset.
echo 1 >$T/options/sym-offset
run function function_symoff
echo 0 >$T/options/sym-offset
run function_graph graph
echo 1 >$T/options/funcgraph-proc
echo 1 >$T/options/funcgraph-abstime
run function_graph graph_proc
echo 0 >$T/options/funcgraph-proc
echo 0 >$T/options/funcgraph-abstime

# Stack traces for a few functions only.
echo 0 >$T/tracing_on
echo nop >$T/current_tracer
echo ':mod:loop' >$T/set_ftrace_filter
echo dummy_get_stats64 >>$T/set_ftrace_filter
echo function >$T/current_tracer
echo 1 >$T/options/func_stack_trace
echo >$T/trace
echo 1 >$T/tracing_on
work
echo 0 >$T/tracing_on
unwork
begin stack
cat $T/trace
end stack
echo 0 >$T/options/func_stack_trace
echo nop >$T/current_tracer
echo >$T/set_ftrace_filter

# trace_pipe after the buffer overflowed: CPU:N [LOST n EVENTS].
echo function >$T/current_tracer
echo >$T/trace
echo 1 >$T/tracing_on
work
echo 0 >$T/tracing_on
unwork
begin pipe
timeout 120 cat $T/trace_pipe
end pipe

# Reading `trace` while the tracer keeps writing.
echo 0 >$T/options/pause-on-trace
echo >$T/trace
echo 1 >$T/tracing_on
work
begin live
timeout 120 head -n 1500 $T/trace
end live
echo 0 >$T/tracing_on
unwork
echo 1 >$T/options/pause-on-trace

# nop tracer with one marker write.
echo nop >$T/current_tracer
echo >$T/trace
echo 1 >$T/tracing_on
echo "hello from the nop tracer" >$T/trace_marker
echo 0 >$T/tracing_on
begin nop
cat $T/trace
end nop

echo "===FTRACE-ALL-DONE==="
poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) >"$work/initrd.cpio.gz"

# --- boot ---
# TCG by default (the recording was made that way); USE_KVM=1 switches KVM on.
accel=()
if [ -n "${USE_KVM:-}" ]; then accel=(-enable-kvm); fi
echo "booting $kver under QEMU (log: $out/serial.log)"
set +e
timeout 900 qemu-system-x86_64 "${accel[@]}" -m 512 -smp 2 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$work/initrd.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet" </dev/null >"$work/serial.raw"
rc=$?
set -e
tr -d '\r' <"$work/serial.raw" >"$out/serial.log"
set -e
echo "qemu exit status: $rc"

# --- extract ---
for name in info function function_symoff graph graph_proc stack pipe live nop; do
    awk -v b="===FTRACE-$name-BEGIN===" -v e="===FTRACE-$name-END===" \
        'function ends(s, t) { return substr(s, length(s) - length(t) + 1) == t }
         ends($0, e) {on = 0} on {print} ends($0, b) {on = 1}' "$out/serial.log" >"$out/$name.txt"
    printf '%-12s %7d lines\n' "$name.txt" "$(wc -l <"$out/$name.txt")"
done
echo "$(basename "$deb")" >"$out/kernel-package.txt"
grep -q '===FTRACE-ALL-DONE===' "$out/serial.log" || {
    echo "$0: the guest did not finish; see $out/serial.log" >&2
    exit 1
}
