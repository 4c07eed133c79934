#!/usr/bin/env bash
# The DynamoDB-compatible server the fleet tests and the fleet benchmark start on loopback:
# moto's server application under waitress, both from PyPI, pinned (loopback/src/moto.rs serves it
# one request at a time, with connections kept alive).
# DynamoDB Local is not used: its licence does not allow it here.
#
# Installed into target/moto/venv, a virtual environment of this checkout's own (scripts/venv.sh;
# never the system pip, which Debian and Ubuntu refuse), whose python the tests use by default.
# MOTO_PYTHON=/path/to/python names another Python instead, for this script and the tests alike:
# the pins are installed into it (with its own pip) unless it has them already.
set -euo pipefail
cd "$(dirname "$0")/.."

pins=('moto[server]==5.2.5' 'waitress==3.0.2')
if [ -n "${MOTO_PYTHON:-}" ]; then
    "$MOTO_PYTHON" -c 'import moto, flask, importlib.metadata as m; assert m.version("moto") == "5.2.5" and m.version("waitress") == "3.0.2"' 2>/dev/null && exit 0
    "$MOTO_PYTHON" -m pip install --quiet --disable-pip-version-check "${pins[@]}" || {
        echo "scripts/moto.sh: MOTO_PYTHON=$MOTO_PYTHON lacks ${pins[*]} and its pip did not install" \
            "them: name a venv's python, or unset MOTO_PYTHON to use target/moto/venv" >&2
        exit 1
    }
    exit 0
fi
bash scripts/venv.sh target/moto/venv "${pins[@]}" >/dev/null
