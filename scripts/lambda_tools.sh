#!/usr/bin/env bash
# Installs what building and running the function as `sam build` does needs, pinned so that a new
# release cannot change an unchanged CI run:
# - cargo-lambda and Zig from PyPI (what SAM's rust-cargolambda build method calls; Zig links the
#   arm64 artifact), in a virtualenv of their own;
# - qemu-user and the arm64 C library from Debian, to run the arm64 artifact on an x86_64 host.
# Prints the virtualenv's bin directory; put it first on PATH to use the tools.
set -euo pipefail

CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.15.2
venv="${LAMBDA_TOOLS_VENV:-$HOME/.cache/export-job-status/lambda-tools}"

if ! "$venv/bin/cargo-lambda" --version 2>/dev/null | grep -q " $CARGO_LAMBDA_VERSION\b" ||
    ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ziglang') != '$ZIGLANG_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION" >&2
fi

if ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends qemu-user libc6-arm64-cross >/dev/null
fi

echo "$venv/bin"
