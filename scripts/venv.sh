#!/usr/bin/env bash
# A Python virtual environment of this checkout's own, with packages from PyPI (pinned by the
# caller), made once and reused:
#
#   scripts/venv.sh DIR PIP-ARGUMENT...      prints DIR's python, absolute
#
# The system pip is never used: Debian and Ubuntu refuse it (PEP 668). The venv is made with
# `python3 -m venv` (Debian: the python3-venv package). It is reused only while it was made at
# this very path with these very arguments (and the same contents of any requirements file
# named): a venv's scripts (bin/pip, bin/st, ...) hard-code the path it was made at, so one
# copied along with a checkout, or made for other pins, is made again. Callers run the printed
# python directly (`python -m pip`, `python -m cfnlint`, ...), never the venv's scripts.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/venv.sh DIR PIP-ARGUMENT..." >&2; exit 2; }
dir=$1
shift
mkdir -p "$dir"
dir=$(cd "$dir" && pwd -P)
stamp="$dir/.made-for"
want=$(
    printf '%s\n' "$dir" "$@"
    for arg in "$@"; do
        if [ -f "$arg" ]; then cat "$arg"; fi
    done
)

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$dir/bin/python" -c '' 2>/dev/null; then
    # Only ever remove a venv (or an empty directory), whatever DIR a caller passes.
    if [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/pyvenv.cfg" ]; then
        echo "scripts/venv.sh: $dir is not a virtual environment; not touching it" >&2
        exit 1
    fi
    echo "making the virtual environment $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2
    # Written last: an interrupted install is made again next time.
    printf '%s\n' "$want" >"$stamp"
fi
echo "$dir/bin/python"
