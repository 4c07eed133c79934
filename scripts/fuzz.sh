#!/usr/bin/env bash
# Builds every cargo-fuzz target, then runs each (or the ones named) for a fixed time, one after
# the other, and prints what each did. A target that no longer compiles fails the script before
# anything runs; a crash fails it with libFuzzer's report and the crashing input under
# fuzz/artifacts/<target>/. `.ci/run` runs it for 60 s each, so that fuzzing cannot stop unnoticed.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 seconds, every target)
#
# Installs what it needs from crates.io only: cargo-fuzz, pinned, with `cargo install --locked`.
# The toolchain: FUZZ_TOOLCHAIN if set (`cargo +$FUZZ_TOOLCHAIN`); else nightly if rustup has it;
# else the default toolchain with RUSTC_BOOTSTRAP=1, which lets stable take the nightly flags
# cargo-fuzz passes (-Zsanitizer=address, ...), so a clean machine needs no nightly download.
# Builds go to fuzz/target (the fuzz package is not a workspace member).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.1
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(event ids)
fi

# (grep without -q reads all its input: under pipefail, an early exit could fail the pipeline.)
if [ -z "${FUZZ_TOOLCHAIN:-}" ] && rustup toolchain list 2>/dev/null | grep '^nightly-' >/dev/null; then
    FUZZ_TOOLCHAIN=nightly
fi
cargo=(cargo)
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    cargo=(cargo "+$FUZZ_TOOLCHAIN")
fi
case "${FUZZ_TOOLCHAIN:-}" in
nightly*) ;;
*) export RUSTC_BOOTSTRAP=1 ;;
esac
echo "== fuzz toolchain: $("${cargo[@]}" --version)${RUSTC_BOOTSTRAP:+ with RUSTC_BOOTSTRAP=1}"

cargo fuzz --version 2>/dev/null | grep -x "cargo-fuzz $CARGO_FUZZ_VERSION" >/dev/null ||
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"

# Seeds: the sample events (the event target), and ids that cover each rule (the ids target:
# a flags byte, the datastore id, 0x00, the job id). Copied into the working corpus, which is
# not committed.
mkdir -p fuzz/corpus/event fuzz/corpus/ids
for f in events/*.json; do
    [ "$(basename "$f")" = env.json ] || cp "$f" fuzz/corpus/event/
done
seed() { printf "$2" >"fuzz/corpus/ids/$1"; }
seed plain '\x00a1b2c3d4e5f60718293a4b5c6d7e8f90\x000f1e2d3c4b5a69788796a5b4c3d2e1f0'
seed encoded '\x01job%%201%%2Fa%%25b\x00a%%2520b'
seed symbols '\x00_.:/=+-%%@\x00x'
seed unicode '\x00\xe3\x83\x87\xe2\x85\xab\xd9\xa3\xc2\xbd\xe2\x80\xa8\x00\xc7\x85'
seed marks '\x01e%%CC%%81\x00%%FF%%FE'
seed long '\x00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x00'
seed tab '\x01bad%%09tab\x00job'

echo "== fuzz build: ${targets[*]}"
started=$(date +%s)
for target in "${targets[@]}"; do
    (cd fuzz && "${cargo[@]}" fuzz build -O "$target")
done
echo "== fuzz build: $(($(date +%s) - started))s"

status=0
for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds}s"
    log="fuzz/$target.log"
    if ! (cd fuzz && "${cargo[@]}" fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048) >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "== $target: CRASHED (input under fuzz/artifacts/$target/, log in $log)"
        status=1
        continue
    fi
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
    # libFuzzer's last status line: "#N DONE cov: C ft: F corp: U/Sb ...".
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    field() { sed -n "s/.* $1: \([^ ]*\).*/\1/p" <<<"$last"; }
    echo "== $target: $(stat number_of_executed_units) inputs, $(stat average_exec_per_sec)/s," \
        "coverage $(field cov) edges, $(field ft) features, corpus $(field corp) (units/bytes)," \
        "peak RSS $(stat peak_rss_mb) MB, no crash"
done
exit "$status"
