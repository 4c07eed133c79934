#!/usr/bin/env bash
# The DynamoDB-compatible server the fleet tests and the fleet benchmark start on loopback:
# moto's server application under waitress, both from PyPI, pinned (loopback/src/moto.rs serves it
# one request at a time, with connections kept alive).
# DynamoDB Local is not used: its licence does not allow it here.
set -euo pipefail
python3 -c 'import moto, flask, importlib.metadata as m; assert m.version("moto") == "5.2.5" and m.version("waitress") == "3.0.2"' 2>/dev/null && exit 0
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'moto[server]==5.2.5' 'waitress==3.0.2'
