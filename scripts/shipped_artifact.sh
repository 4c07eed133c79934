#!/usr/bin/env bash
# Builds the function the way `sam build` does (the template's BuildMethod rust-cargolambda runs
# `cargo lambda build --release`, plus `--arm64` for arm64), for x86_64 and arm64, and runs the
# compiled-binary tests against those artifacts instead of the one `cargo test` builds:
# everything on x86_64, the end-to-end, unreadable-event and corpus tests on arm64 under
# qemu-user. docs/deploy.md says what this proves. Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== the shipped artifact: built as sam build builds it, through the compiled-binary tests"

step() { # step NAME COMMAND...: runs it and reports its wall time
    local name=$1 started=$SECONDS
    shift
    echo "-- $name"
    "$@"
    echo "-- $name: $((SECONDS - started)) s"
}

started=$SECONDS
tools=$(bash scripts/lambda_tools.sh)
echo "-- install cargo-lambda, Zig, qemu-user: $((SECONDS - started)) s"
export PATH="$tools:$PATH"
cargo lambda --version

artifacts=target/artifacts
build() { # build ARCH [FLAGS...]: one artifact, copied out of cargo-lambda's shared output path
    local arch=$1
    shift
    cargo lambda build --release --bin export-job-status "$@"
    install -D target/lambda/export-job-status/bootstrap "$artifacts/$arch/bootstrap"
    ls -l "$artifacts/$arch/bootstrap"
}
step "cargo lambda build --release (x86_64)" build x86_64
step "cargo lambda build --release --arm64" build arm64 --arm64

# The test binaries are those `cargo test` built in the step before; only the function differs.
binary_tests=(--test lambda_e2e --test faults --test log_secrets --test unreadable --test corpus)
step "compiled-binary tests against the x86_64 artifact" \
    env EXPORT_JOB_STATUS_BINARY="$PWD/$artifacts/x86_64/bootstrap" \
    cargo test "${binary_tests[@]}"
step "end-to-end, unreadable and corpus tests against the arm64 artifact (qemu-aarch64)" \
    env EXPORT_JOB_STATUS_BINARY="$PWD/$artifacts/arm64/bootstrap" \
    EXPORT_JOB_STATUS_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    cargo test --test lambda_e2e --test unreadable --test corpus
