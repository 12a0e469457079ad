#!/usr/bin/env bash
# Downloads the current Debian kernel image package (what the linux-image-amd64 metapackage
# depends on) with `apt-get download` and unpacks it into DIR. Afterwards:
#   DIR/lib/modules/VERSION/kernel/   the module tree (.ko, .ko.xz or .ko.zst)
#   DIR/boot/System.map-VERSION       Debian's placeholder (one line: "The real System.map
#                                     is in the linux-image-<version>-dbg package")
#   DIR/Module.symvers                the exports, from the matching linux-headers package
# With --real-system-map it also downloads the -dbg package (about 850 MB) and extracts only
#   DIR/System.map                    the core kernel's real symbols
# Usage: scripts/debian-kernel.sh [--real-system-map] DIR [ARCH]   (ARCH defaults to amd64)
set -euo pipefail
real=no
if [ "${1:-}" = --real-system-map ]; then
    real=yes
    shift
fi
if [ $# -lt 1 ]; then
    echo "usage: $0 [--real-system-map] DIR [ARCH]" >&2
    exit 2
fi
dir=$1
arch=${2:-amd64}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# The metapackage names the current image package (signed or unsigned).
pkg=$(apt-cache depends "linux-image-$arch" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$pkg" ]; then
    echo "$0: apt-cache knows no linux-image-$arch (run apt-get update?)" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download "$pkg" >&2)
deb=$(ls "$work"/*.deb)
dpkg-deb -x "$deb" "$dir"
version=$(ls "$dir/lib/modules" | head -n 1)
# Module.symvers: in linux-headers-VERSION (a small package).
(cd "$work" && apt-get download "linux-headers-$version" >&2)
dpkg-deb --fsys-tarfile "$work"/linux-headers-*.deb |
    tar -xO --wildcards "./usr/src/linux-headers-$version/Module.symvers" >"$dir/Module.symvers"
echo "Module.symvers: $dir/Module.symvers ($(wc -l <"$dir/Module.symvers") exports)"
if [ $real = yes ]; then
    (cd "$work" && apt-get download "$pkg-dbg" >&2)
    dpkg-deb --fsys-tarfile "$work/$pkg"-dbg_*.deb |
        tar -xO "./usr/lib/debug/boot/System.map-$version" >"$dir/System.map"
    echo "System.map: $dir/System.map ($(wc -l <"$dir/System.map") symbols)"
fi
echo "package: $pkg ($(basename "$deb"))"
echo "modules: $dir/lib/modules/$version/kernel ($(find "$dir/lib/modules/$version/kernel" -name '*.ko*' | wc -l) files)"
if [ $real = no ]; then
    echo "System.map: $dir/boot/System.map-$version is Debian's placeholder; --real-system-map fetches the real one"
fi
