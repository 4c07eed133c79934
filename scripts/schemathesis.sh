#!/usr/bin/env bash
# Checks openapi.yaml against the running function, in one command:
#   1. validates it as OpenAPI 3.1 (its patterns as ECMA-262, see scripts/openapi_check.py);
#   2. builds and starts the local run (`local`, the function behind a loopback HTTP server, with
#      its loopback HealthLake stand-in and demo jobs) on free ports;
#   3. runs schemathesis against it, every check, a bounded number of examples per operation;
#   4. stops the server.
#
#   scripts/schemathesis.sh [--validate-only]
#
# SCHEMATHESIS_EXAMPLES (default 100) and SCHEMATHESIS_SEED (default fixed, so that CI runs the
# same cases every time; set another to explore) tune step 3. The Python tools are installed from
# PyPI, pinned, into target/hardening/venv (scripts/venv.sh: a venv of this checkout's own).
set -euo pipefail
cd "$(dirname "$0")/.."

python=$(bash scripts/venv.sh target/hardening/venv \
    "schemathesis==4.32.5" "openapi-spec-validator==0.9.0" \
    "openapi-schema-validator[ecma-regex]==0.9.0" "unicodedata2==18.0.0" "pyyaml>=6")

"$python" scripts/openapi_check.py validate openapi.yaml
[ "${1:-}" = "--validate-only" ] && exit 0

# schemathesis compiles patterns with Python's re, which has no \p{L}: it reads a generated copy
# with those classes spelled out (scripts/openapi_check.py says how).
mkdir -p target/openapi
"$python" scripts/openapi_check.py python-copy openapi.yaml target/openapi/openapi.python.yaml

cargo build --quiet -p local
banner=target/openapi/local.out
target/debug/local --port 0 --healthlake-port 0 >"$banner" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
url=""
for _ in $(seq 1 100); do
    url=$(sed -n 's/^export-job-status is listening on \(http:[^ ]*\)$/\1/p' "$banner")
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$banner"; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "the local run did not start"; cat "$banner"; exit 1; }
echo "local run on $url"

"$python" "$(dirname "$python")/st" --config-file scripts/schemathesis.toml run target/openapi/openapi.python.yaml \
    --url "$url" \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" \
    --seed "${SCHEMATHESIS_SEED:-20261126}" \
    --generation-database none \
    --request-timeout 15 \
    --no-color
