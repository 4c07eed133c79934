#!/usr/bin/env bash
# The README's test command: every test of the workspace, with no AWS account and nothing sent
# to AWS. The DynamoDB tests (the fleet's shared tier, partner scoping) start moto's server on
# loopback, so its pinned version is first installed from PyPI into target/moto/venv, this
# checkout's own virtual environment, when it is not there yet (scripts/moto.sh; MOTO_PYTHON
# names another Python). Arguments go to `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/moto.sh
exec cargo test --workspace "$@"
