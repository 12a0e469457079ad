#!/usr/bin/env bash
# Keeps fuzz/Cargo.lock in step with the workspace's Cargo.lock: starts from the workspace's
# lock, so every package both use keeps the workspace's version, and lets cargo drop what the
# fuzz crate does not use and add what only it uses (libfuzzer-sys, ...).
#   bash scripts/fuzz-lock.sh          # rewrite fuzz/Cargo.lock
#   bash scripts/fuzz-lock.sh --check  # fail if a package both use has two versions, or if
#                                      # the lock misses a package the fuzz crate needs
set -euo pipefail
cd "$(dirname "$0")/.."
versions() { awk '/^name = /{n=$3} /^version = /{print n, $3}' "$1" | tr -d '"' | sort -u; }
if [ "${1:-}" = --check ]; then
    drift=$(join <(versions Cargo.lock) <(versions fuzz/Cargo.lock) | awk '$2 != $3' |
        while read -r name a b; do
            # A package locked at several versions (two majors) drifts only if neither
            # lock holds the other's version.
            grep -qx "$name $b" <(versions Cargo.lock) || echo "$name: workspace $a, fuzz $b"
        done | sort -u)
    if [ -n "$drift" ]; then
        echo "fuzz/Cargo.lock is out of step with Cargo.lock (run scripts/fuzz-lock.sh):"
        echo "$drift"
        exit 1
    fi
    # A package the workspace gained since the lock was written (a new dependency of a crate
    # the fuzz targets use) is missing from it, and cargo would add it at its newest version.
    if ! said=$(cd fuzz && cargo metadata --format-version 1 --locked 2>&1 >/dev/null); then
        echo "fuzz/Cargo.lock misses packages the fuzz crate needs (run scripts/fuzz-lock.sh):"
        echo "$said" | grep -E '^error' || echo "$said" | tail -3
        exit 1
    fi
    exit 0
fi
cp Cargo.lock fuzz/Cargo.lock
(cd fuzz && cargo metadata --format-version 1 >/dev/null)
echo "fuzz/Cargo.lock rewritten from Cargo.lock"
