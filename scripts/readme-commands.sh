#!/usr/bin/env bash
# Runs every command in README.md's ```sh blocks, in order, as written, in a fresh clone of
# this repository's committed state (so the commands see only what a newcomer's clone has;
# builds reuse this checkout's target directory).
#   bash scripts/readme-commands.sh           # all of them: needs root, the network, and an
#                                             # hour or so (fuzz campaigns, benches, a kernel)
#   bash scripts/readme-commands.sh --quick   # skips those that need root, the network or
#                                             # minutes each, naming each and why
#   bash scripts/readme-commands.sh --only 'debian-kernel|deb/'   # those matching a regex
# Each command's output goes to a log in the clone's readme-logs/; a failing command's last
# lines are printed. Exits 1 if any command fails. `cargo doc --open` runs with BROWSER=true
# (no browser is started).
set -euo pipefail
quick=0
only=""
case "${1:-}" in
    --quick) quick=1 ;;
    --only) only="${2:?--only needs a regular expression}" ;;
esac
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
if [ "${MMP_KEEP_README_CLONE:-}" != 1 ]; then
    trap 'rm -rf "$work"' EXIT
fi
git clone -q "$repo" "$work/repo"
# A clone CI made sits beside ../shared; the commands must not need it, and do not see it.
cd "$work/repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
export BROWSER=true
mkdir -p readme-logs

# The README's commands: the lines of its ```sh blocks, `\` continuations joined.
mapfile -t cmds < <(awk '
    /^```sh$/ { inblock = 1; next }
    /^```/    { inblock = 0; next }
    inblock {
        line = $0
        if (line ~ /\\$/) { sub(/\\$/, "", line); acc = acc line; next }
        acc = acc line
        if (acc ~ /[^[:space:]]/) print acc
        acc = ""
    }' README.md)

# Why --quick skips a command (empty: it runs).
skip_reason() {
    local c="$1"
    case "$c" in
        "cargo test --workspace"*) echo "the test command; CI runs it in its own step" ;;
        *"cargo bench"*) echo "criterion benches take minutes each" ;;
        *MMP_FUZZ_ASAN*) echo "a ten-minute campaign on nightly with AddressSanitizer" ;;
        *scripts/fuzz.sh*) echo "fuzz campaigns; CI runs scripts/fuzz.sh 15 in its own step" ;;
        *scripts/fuzz-planted.sh*) echo "CI runs scripts/fuzz-planted.sh 15 in its own step" ;;
        *fuzz/corpus*) echo "needs a corpus from scripts/fuzz.sh" ;;
        *scripts/loom.sh*) echo "CI runs the loom models in their own step" ;;
        *scripts/unsafe-check.sh*) echo "CI runs Miri and AddressSanitizer in their own step" ;;
        *scripts/callgrind-check.sh*) echo "needs valgrind; minutes" ;;
        *scripts/debian-kernel.sh*) echo "downloads Debian's kernel package" ;;
        *" deb/"* | *scripts/split-speed.sh*) echo "needs scripts/debian-kernel.sh's download" ;;
        *scripts/kernel-trace.sh*) echo "root and QEMU; installs Debian packages" ;;
        *scripts/kernel-mmp.sh*) echo "root and QEMU; installs Debian packages" ;;
        *" run/"*) echo "needs scripts/kernel-trace.sh's recording" ;;
        *) echo "" ;;
    esac
}

ran=0
failed=0
skipped=0
for i in "${!cmds[@]}"; do
    c="${cmds[$i]}"
    short="$(printf '%s' "$c" | sed -E 's/[[:space:]]+#.*$//; s/[[:space:]]+/ /g')"
    if [ -n "$only" ] && ! grep -qE -- "$only" <<<"$c"; then
        continue
    fi
    if [ "$quick" = 1 ]; then
        why="$(skip_reason "$c")"
        if [ -n "$why" ]; then
            printf 'skip          %s\n              (%s)\n' "$short" "$why"
            skipped=$((skipped + 1))
            continue
        fi
    fi
    log="readme-logs/$(printf '%02d' "$i").log"
    t0=$(date +%s)
    if bash -o pipefail -c "$c" >"$log" 2>&1; then
        printf 'ok   %5ss   %s\n' "$(($(date +%s) - t0))" "$short"
        ran=$((ran + 1))
    else
        rc=$?
        printf 'FAIL %5ss   %s   (exit %s)\n' "$(($(date +%s) - t0))" "$short" "$rc"
        tail -n 20 "$log" | sed 's/^/     | /'
        failed=$((failed + 1))
    fi
done
echo "README commands: $ran ran, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
