#!/usr/bin/env bash
# kernel-trace.sh - record a real kernel's module crossings: Debian's current amd64 kernel,
# booted under QEMU (TCG, no KVM), loads a set of modules and exercises them while ftrace's
# `function` tracer (options sym-offset and the irq-info column) records every call of a
# module function; then the guest writes the trace, /proc/kallsyms and /proc/modules to its
# second serial port and powers off.
#
# Writes into OUTDIR:
#   trace.txt           the tracefs `trace` file (function tracer, sym-offset, irq-info,
#                       TASK-PID), module functions only
#   kallsyms.txt        /proc/kallsyms at the end of the run (real addresses: root, and
#                       kptr_restrict=0)
#   modules.txt         /proc/modules at the end of the run (each module's load address)
#   info.txt            uname, CPUs, buffer size, filter size, lost events per CPU
#   serial.log          the guest's console
#   kernel-package.txt  the Debian package the kernel came from
#   modules/            the module files the guest loaded (for `mmp-split`)
#
# The workload: ext4 on a loop device (mke2fs, mount, file writes, sync, unmount); vfat on a
# loop device likewise; e1000 on QEMU's user network with restrict=on (no packet leaves the
# emulator: pings to the emulated host only); a bridge over one end of a veth pair; a tun
# device; an nf_tables table with a counting rule on the output hook; crc32c_generic (ext4's
# metadata checksums use it). Modules are loaded by busybox's modprobe from the package's
# modules.dep, after the trace filter is set (ftrace keeps a `:mod:NAME` filter for a module
# not yet loaded and applies it when the module loads), so module init functions are traced.
#
# Needs: root (apt-get), a Debian archive, about 400 MB of disk. Packages, installed when
# missing: qemu-system-x86, busybox-static, cpio, e2fsprogs, dosfstools, iproute2, nftables,
# kmod, xz-utils, zstd. Takes about 2-3 minutes on a 2-core machine (the ~70 MB kernel
# package download, then about a minute and a half of QEMU).
#
# Module-to-core calls are not traced: the ~1,000 core functions these modules import fire
# in every caller, core ones included, and tracing them here took the guest past 10 minutes
# and its trace past 1.5 GB; so a module's calls into the core kernel show only as the
# returns later lines imply.
#
# Usage: kernel-trace.sh OUTDIR
# Environment: KERNEL_PKG=linux-image-... picks another kernel package; MODULES="ext4 ..."
#   another module set (the workload exercises only the default set); BUFFER_KB per-CPU
#   ring buffer (default 20480); USE_KVM=1 adds -enable-kvm; KERNEL_DEB=FILE uses that
#   kernel package instead of downloading one.
#   For scripts/kernel-mmp.sh (no ftrace; the kernel boots with nokaslr): MMP_MODE=place loads
#   the modules, writes modules.txt, kallsyms.txt and sections.txt (every module section's
#   address) and powers off; MMP_MODE=plugin runs the workload under QEMU_PLUGIN (a -plugin
#   argument) and also writes sections.txt.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/kernel-trace.XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

export DEBIAN_FRONTEND=noninteractive
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v mkfs.fat >/dev/null || need+=(dosfstools)
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v modinfo >/dev/null || need+=(kmod)
command -v xz >/dev/null || need+=(xz-utils)
command -v zstd >/dev/null || need+=(zstd)
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
if [ -n "${KERNEL_DEB:-}" ]; then
    cp "$KERNEL_DEB" "$work/"
else
    (cd "$work" && apt-get download "$pkg" >/dev/null)
fi
deb=$(ls "$work"/*.deb)
echo "kernel package: $(basename "$deb")"
dpkg-deb -x "$deb" "$work/kern"
kver=$(ls "$work/kern/lib/modules" | head -n 1)
vmlinuz="$work/kern/boot/vmlinuz-$kver"
mdir="$work/kern/lib/modules/$kver"
# The package ships no modules.dep (its postinst runs depmod): make it.
depmod -b "$work/kern" "$kver"

# --- the initramfs ---
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,dev,proc,sys,tmp,mnt/e,mnt/v,etc,lib/modules/"$kver"}
cp /bin/busybox "$root/bin/busybox"
for t in modprobe insmod rmmod lsmod; do ln -sf ../bin/busybox "$root/sbin/$t"; done
# Host tools with their shared libraries (the dynamic loader included), named apart from
# busybox's applets (iproute2's ip reads its argv[0]: "xip" is no shortcut of it).
copy_tool() {
    local bin=$1 name=$2
    cp "$bin" "$root/usr/bin/$name"
    ldd "$bin" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}
copy_tool "$(command -v mke2fs)" xmke2fs
copy_tool "$(command -v mkfs.fat)" xmkfs.fat
copy_tool "$( [ -x /usr/sbin/ip ] && echo /usr/sbin/ip || echo /sbin/ip)" xip
copy_tool "$(command -v nft)" xnft
mkdir -p "$root/lib64"
[ -e /lib64/ld-linux-x86-64.so.2 ] && cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"

# The modules and everything they depend on, as modules.dep says; one list in load order.
modules=${MODULES:-"loop crc32c_generic ext4 nls_cp437 nls_ascii vfat e1000 bridge tun veth nf_tables"}
: >"$work/closure"
want() { # module name -> its modules.dep line's path
    awk -v n="$1" -F: '{ p = $1; sub(".*/", "", p); sub(/\.ko.*/, "", p); gsub("-", "_", p);
        if (p == n) { print $1; exit } }' "$mdir/modules.dep"
}
add() { # path: dependencies first
    local path=$1 dep
    grep -qxF "$path" "$work/closure" && return
    for dep in $(awk -v p="$path:" '$1 == p {for (i = 2; i <= NF; i++) print $i}' "$mdir/modules.dep" | tac); do
        add "$dep"
    done
    grep -qxF "$path" "$work/closure" || echo "$path" >>"$work/closure"
}
for m in $modules; do
    p=$(want "$m")
    if [ -z "$p" ]; then
        echo "$0: module $m is not in $kver's modules.dep" >&2
        exit 1
    fi
    add "$p"
done
rm -rf "$out/modules"
mkdir -p "$out/modules"
names=()
while read -r path; do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$path")"
    case "$path" in
    *.ko.xz) xz -dc "$mdir/$path" >"$root/lib/modules/$kver/${path%.xz}" ;;
    *.ko.zst) zstd -qdc "$mdir/$path" >"$root/lib/modules/$kver/${path%.zst}" ;;
    *) cp "$mdir/$path" "$root/lib/modules/$kver/$path" ;;
    esac
    cp "$mdir/$path" "$out/modules/"
    n=$(basename "$path"); n=${n%%.ko*}; names+=("${n//-/_}")
done <"$work/closure"
# modules.dep for busybox modprobe, restricted to the shipped modules, without compression
# suffixes.
awk 'NR == FNR {keep[$1 ":"] = 1; next} $1 in keep' "$work/closure" "$mdir/modules.dep" |
    sed 's/\.ko\.\(xz\|zst\)/.ko/g' >"$root/lib/modules/$kver/modules.dep"
printf '%s\n' "${names[@]}" >"$root/etc/trace-modules"
echo "modules: ${#names[@]} (${names[*]})"

cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
exec </dev/console >/dev/console 2>&1
echo 1 >/proc/sys/kernel/printk
echo 0 >/proc/sys/kernel/kptr_restrict
T=/sys/kernel/tracing
BUF=$(cat /proc/cmdline | sed -n 's/.*tracebuf=\([0-9]*\).*/\1/p')
# mmpmode=place: load the modules, write where they lie, power off (no tracing);
# mmpmode=plugin: the workload without ftrace (QEMU's mmp plugin watches instead).
MODE=$(sed -n 's/.*mmpmode=\([a-z]*\).*/\1/p' /proc/cmdline)
placement() { # every loaded module's sections: MODULE SECTION ADDRESS
    for d in /sys/module/*/sections; do
        m=${d%/sections}; m=${m##*/}
        for f in "$d"/.[!.]* "$d"/*; do [ -f "$f" ] && echo "$m ${f##*/} $(cat "$f")"; done
    done
}
if [ -z "$MODE" ]; then
echo 0 >$T/tracing_on
echo ${BUF:-20480} >$T/buffer_size_kb
echo 1 >$T/options/sym-offset
echo 1 >$T/options/irq-info
# The filter: one core function that (nearly) never runs keeps it from being empty, which
# would trace everything until the modules load; then each module, applied when it loads.
echo sys_ni_syscall >$T/set_ftrace_filter
while read -r m; do echo ":mod:$m" >>$T/set_ftrace_filter; done </etc/trace-modules
echo function >$T/current_tracer
echo >$T/trace
echo 1 >$T/tracing_on
fi
echo "workload start" >$T/trace_marker

# The trace is read after each module loads: a module's init functions are freed when its
# init returns, and only until the next module takes their memory does the kernel still
# name them (ftrace keeps the names of the freed init functions of traced modules).
mkdir /tmp/out
chunk() {
    [ -z "$MODE" ] || return 0
    cat $T/trace | sed "$1" >>/tmp/out/trace.txt
    cat $T/per_cpu/cpu*/stats | awk '$1 == "overrun:" {n += $2} END {print n + 0}' >>/tmp/out/overruns
    echo >$T/trace
}
first=1
while read -r m; do
    modprobe "$m" || echo "modprobe $m failed"
    if [ $first = 1 ]; then chunk ''; first=0; else chunk '/^#/d'; fi
done </etc/trace-modules
echo "workload modules loaded" >$T/trace_marker
if [ "$MODE" = place ]; then
    cat /proc/modules >/tmp/out/modules.txt
    placement >/tmp/out/sections.txt
    cat /proc/kallsyms >/tmp/out/kallsyms.txt
    stty -F /dev/ttyS1 raw -echo 115200
    (cd /tmp/out && tar cf - modules.txt sections.txt kallsyms.txt | gzip -1) >/dev/ttyS1
    sleep 1
    echo "===KERNEL-TRACE-DONE==="
    poweroff -f
fi

# ext4 on a loop device
dd if=/dev/zero of=/tmp/ext4.img bs=1M count=24 2>/dev/null
xmke2fs -q -F -t ext4 /tmp/ext4.img
losetup /dev/loop0 /tmp/ext4.img
mount -t ext4 /dev/loop0 /mnt/e
i=0
while [ $i -lt 40 ]; do
    echo "file $i of the ext4 workload" >/mnt/e/f$i
    dd if=/dev/zero of=/mnt/e/big$((i % 4)) bs=4k count=8 2>/dev/null
    i=$((i + 1))
done
mkdir /mnt/e/dir; mv /mnt/e/f1 /mnt/e/dir/; rm /mnt/e/f2; ls -l /mnt/e >/dev/null
sync
cat /mnt/e/f3 /mnt/e/dir/f1 >/dev/null
umount /mnt/e
losetup -d /dev/loop0
echo "workload ext4 done" >$T/trace_marker

# vfat on a loop device
dd if=/dev/zero of=/tmp/vfat.img bs=1M count=8 2>/dev/null
xmkfs.fat /tmp/vfat.img >/dev/null
losetup /dev/loop1 /tmp/vfat.img
mount -t vfat /dev/loop1 /mnt/v || dmesg | tail -n 5
i=0
while [ $i -lt 20 ]; do echo "vfat file $i" >/mnt/v/FILE$i.TXT; i=$((i + 1)); done
mkdir /mnt/v/sub; cp /mnt/v/FILE3.TXT /mnt/v/sub/; ls -l /mnt/v /mnt/v/sub >/dev/null
sync
umount /mnt/v
losetup -d /dev/loop1
echo "workload vfat done" >$T/trace_marker

# e1000 on QEMU's user network (restrict=on: nothing leaves the emulator)
ip link set lo up
xip link set eth0 up
xip addr add 10.0.2.15/24 dev eth0
ping -c 3 -W 1 10.0.2.2 >/dev/null 2>&1
echo "workload e1000 done" >$T/trace_marker

# a bridge over one end of a veth pair
xip link add v0 type veth peer name v1
xip link add br0 type bridge
xip link set v0 master br0
xip link set v0 up; xip link set v1 up; xip link set br0 up
xip addr add 10.3.0.1/24 dev br0
xip addr add 10.3.1.1/24 dev v1
ping -c 2 -W 1 10.3.0.9 >/dev/null 2>&1
ping -c 2 -W 1 -I v1 10.3.1.9 >/dev/null 2>&1
cat /sys/class/net/br0/statistics/tx_packets >/dev/null
xip link del br0; xip link del v0
echo "workload bridge/veth done" >$T/trace_marker

# a tun device
xip tuntap add dev tun0 mode tun
xip link set tun0 up
xip addr add 10.4.0.1/24 dev tun0
ping -c 2 -W 1 10.4.0.2 >/dev/null 2>&1
xip tuntap del dev tun0 mode tun
echo "workload tun done" >$T/trace_marker

# nf_tables: a table, an output chain with a counting rule, traffic through it
xnft add table inet mmp
xnft add chain inet mmp out '{ type filter hook output priority 0; }'
xnft add rule inet mmp out counter
ping -c 2 -W 1 10.0.2.2 >/dev/null 2>&1
xnft list ruleset >/dev/null
xnft delete table inet mmp
echo "workload nf_tables done" >$T/trace_marker
echo "workload end" >$T/trace_marker
echo 0 >$T/tracing_on
chunk '/^#/d'

files="info.txt kallsyms.txt modules.txt"
if [ -n "$MODE" ]; then
    { uname -a; echo "cpus: $(nproc)"; echo "mode: $MODE (no ftrace)"; } >/tmp/out/info.txt
    placement >/tmp/out/sections.txt
    files="$files sections.txt"
else
files="$files trace.txt"
{
    uname -a
    echo "cpus: $(nproc)"
    echo "buffer_size_kb: $(cat $T/buffer_size_kb)"
    echo "filter entries: $(wc -l <$T/set_ftrace_filter)"
    echo "chunks read: $(wc -l </tmp/out/overruns) (after each module loads, and after the workload)"
    echo "events lost (overruns, all chunks): $(awk '{n += $1} END {print n + 0}' /tmp/out/overruns)"
} >/tmp/out/info.txt
fi
cat /tmp/out/info.txt
cat /proc/kallsyms >/tmp/out/kallsyms.txt
cat /proc/modules >/tmp/out/modules.txt
stty -F /dev/ttyS1 raw -echo 115200
(cd /tmp/out && tar cf - $files | gzip -1) >/dev/ttyS1
sleep 1
echo "===KERNEL-TRACE-DONE==="
poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.cpio.gz"

# --- boot ---
accel=()
if [ -n "${USE_KVM:-}" ]; then accel=(-enable-kvm); fi
echo "booting $kver under QEMU"
set +e
buffer_kb=${BUFFER_KB:-20480}
plugin=()
if [ -n "${QEMU_PLUGIN:-}" ]; then plugin=(-plugin "$QEMU_PLUGIN"); fi
append="console=ttyS0 panic=-1 quiet tracebuf=$buffer_kb"
if [ -n "${MMP_MODE:-}" ]; then append="$append nokaslr mmpmode=$MMP_MODE"; fi
timeout 900 qemu-system-x86_64 "${accel[@]}" "${plugin[@]}" -m 1024 -smp 2 -display none -no-reboot \
    -serial stdio -serial "file:$work/ttyS1" \
    -netdev user,id=n0,restrict=on -device e1000,netdev=n0 \
    -kernel "$vmlinuz" -initrd "$work/initrd.cpio.gz" \
    -append "$append" </dev/null >"$work/serial.raw"
rc=$?
set -e
tr -d '\r' <"$work/serial.raw" >"$out/serial.log"
echo "qemu exit status: $rc"
grep -q '===KERNEL-TRACE-DONE===' "$out/serial.log" || {
    echo "$0: the guest did not finish; see $out/serial.log" >&2
    exit 1
}
# gzip reports the serial port's trailing bytes (if any) as trailing garbage: ignore that.
(cd "$out" && { gzip -dc 2>/dev/null <"$work/ttyS1" || true; } | tar xf -)
echo "$(basename "$deb")" >"$out/kernel-package.txt"
for f in info trace kallsyms modules sections; do
    [ -f "$out/$f.txt" ] || continue
    printf '%-13s %9d lines\n' "$f.txt" "$(wc -l <"$out/$f.txt")"
done
echo "in $(($(date +%s) - started)) s"
