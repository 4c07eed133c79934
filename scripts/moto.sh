#!/usr/bin/env bash
# Installs moto's server (a DynamoDB-compatible server on loopback) for the partner-scoping tests
# (tests/it/scoping.rs starts it through tests/it/dynamodb.rs). From PyPI, pinned, so that a new
# moto release cannot change what the tests see.
set -euo pipefail
echo "== moto[server] for the DynamoDB tests"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'moto[server]==5.2.5'
python3 -c 'import moto.server' # fails here, not in the tests, if the install is broken
