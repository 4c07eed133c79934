#!/usr/bin/env bash
# Builds the function with `sam build` (the template's BuildMethod rust-cargolambda: SAM runs
# `cargo lambda build --release --bin export-job-status`, plus `--arm64` for arm64), for arm64
# (the template as it is) and x86_64 (the same template with the architecture switched), and runs
# the compiled-binary tests against those artifacts instead of the one `cargo test` builds: on
# x86_64 natively, on arm64 under qemu-user. docs/deploy.md says what this proves. Prints how
# long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== the shipped artifact: sam build's, x86_64 and arm64, through the compiled-binary tests"

step() { # step NAME COMMAND...: runs it and reports its wall time
    local name=$1 started=$SECONDS
    shift
    echo "-- $name"
    "$@"
    echo "-- $name: $((SECONDS - started)) s"
}

started=$SECONDS
tools=$(bash scripts/lambda_tools.sh)
echo "-- install SAM CLI, cargo-lambda, Zig, qemu-user: $((SECONDS - started)) s"
export PATH="$tools:$PATH" SAM_CLI_TELEMETRY=0
sam --version
cargo lambda --version

out=target/sam
mkdir -p "$out"
sed -E 's/^( *Architectures:) \[arm64\]$/\1 [x86_64]/' template.yaml >"$out/template-x86_64.yaml"
grep -q 'Architectures: \[x86_64\]' "$out/template-x86_64.yaml" || {
    echo "template.yaml has no 'Architectures: [arm64]' line to switch" >&2
    exit 1
}
build() { # build ARCH TEMPLATE: sam build into target/sam/ARCH, no Docker
    sam build --template-file "$2" --base-dir . --build-dir "$out/$1"
    ls -l "$out/$1/ExportJobStatusFunction/bootstrap"
}
step "sam build (arm64)" build arm64 template.yaml
step "sam build (x86_64)" build x86_64 "$out/template-x86_64.yaml"

# The test binaries are those `cargo test` built in the step before; only the function differs.
binary_tests=(--test it -- e2e:: faults:: log_secrets:: unreadable:: corpus::)
step "compiled-binary tests against the x86_64 artifact" \
    env EXPORT_JOB_STATUS_BINARY="$PWD/$out/x86_64/ExportJobStatusFunction/bootstrap" \
    cargo test "${binary_tests[@]}"
step "compiled-binary tests against the arm64 artifact (qemu-aarch64)" \
    env EXPORT_JOB_STATUS_BINARY="$PWD/$out/arm64/ExportJobStatusFunction/bootstrap" \
    EXPORT_JOB_STATUS_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    cargo test "${binary_tests[@]}"
