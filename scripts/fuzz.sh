#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for a fixed time each, one after the other,
# and prints how many inputs each ran. A crash stops the script with libFuzzer's report and the
# crashing input under fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 seconds, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (`cargo +nightly`);
# without nightly, FUZZ_TOOLCHAIN=stable RUSTC_BOOTSTRAP=1 lets stable build it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(event ids)
fi
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

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

status=0
for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds}s"
    log="fuzz/$target.log"
    started=$(date +%s)
    if ! cargo "+$toolchain" fuzz run -O "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "== $target: CRASHED (input under fuzz/artifacts/$target/)"
        status=1
        continue
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "== $target: ${runs:-?} inputs in $(($(date +%s) - started))s (build included), no crash"
done
exit "$status"
