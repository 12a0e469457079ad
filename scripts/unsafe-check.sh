#!/usr/bin/env bash
# The workspace's only `unsafe` code (mmp-memguard's `page_real`: mprotect, the SIGSEGV and
# SIGTRAP handlers, single stores to real pages; every other crate root forbids `unsafe`,
# and memguard denies it outside that module) under the two checkers that can see it:
# - Miri over the whole crate. Miri cannot call mprotect or deliver signals, so page_real's
#   own tests are ignored under it (`cfg_attr(miri, ignore)`); the portable level and the
#   API tests run.
# - AddressSanitizer over the same tests, page_real's included (the standard library rebuilt
#   with it; `handle_segv=0` leaves SIGSEGV to the crate's handler, which is what is tested).
#   Stores made by inline assembly are not instrumented; everything around them is.
# Runs on the nightly toolchain: installs it if missing (never updates one already there) and
# adds its miri and rust-src components. Builds go to this checkout's own
# target/unsafe-check/, whatever CARGO_TARGET_DIR says: a sanitizer or Miri build shares
# nothing with a normal one, and cargo-miri's cached test runs name the directory they were
# built from, so a target directory shared with another (since deleted) clone fails them.
#   bash scripts/unsafe-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
rustup component add --toolchain nightly miri rust-src
dir="$PWD/target/unsafe-check"
echo "=== Miri: cargo +nightly miri test -p mmp-memguard"
CARGO_TARGET_DIR="$dir/miri" cargo +nightly miri test -p mmp-memguard
echo "=== AddressSanitizer: cargo +nightly test -Zbuild-std -p mmp-memguard"
host=$(rustc +nightly -vV | awk '/^host:/ {print $2}')
ASAN_OPTIONS="handle_segv=0:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
    CARGO_TARGET_DIR="$dir/asan" \
    cargo +nightly test -Zbuild-std --target "$host" -p mmp-memguard
