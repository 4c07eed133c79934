#!/usr/bin/env bash
# The README's test command: every test of the workspace, offline. The DynamoDB tests (the
# fleet's shared tier, partner scoping) start moto's server on loopback, so its pinned version is
# installed from PyPI first when it is missing (scripts/moto.sh); nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/moto.sh
exec cargo test --workspace "$@"
