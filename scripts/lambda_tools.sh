#!/usr/bin/env bash
# Installs what building the function with `sam build` and running the result needs, pinned so
# that a new release cannot change an unchanged CI run:
# - SAM CLI, cargo-lambda (what SAM's rust-cargolambda build method calls) and Zig (which
#   cargo-lambda links with) from PyPI, in a virtualenv of their own;
# - qemu-user and the arm64 C library from Debian, to run the arm64 artifact on an x86_64 host.
# Prints the virtualenv's bin directory; put it first on PATH to use the tools.
set -euo pipefail

pins=(aws-sam-cli==1.170.0 cargo-lambda==1.9.2 ziglang==0.15.2)
venv="${LAMBDA_TOOLS_VENV:-$HOME/.cache/export-job-status/lambda-tools}"

installed() { # every pin installed in the virtualenv
    "$venv/bin/python" - "${pins[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(any(m.version(name) != version for name, version in (p.split("==") for p in sys.argv[1:])))
PY
}
if ! installed; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
fi

if ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends qemu-user libc6-arm64-cross >/dev/null
fi

echo "$venv/bin"
