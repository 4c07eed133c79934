#!/usr/bin/env bash
# The reference web page (web/) in a real browser, in one command:
#   1. installs headless Chromium and its driver from Debian (chromium, chromium-driver) when
#      missing, and the pinned Python tools (tests/browser/requirements.txt) into a venv of the
#      checkout's own, target/browser/venv (scripts/venv.sh);
#   2. builds the local run (`local`: the function on 127.0.0.1, the page on localhost);
#   3. runs tests/browser with pytest: the page watches demo jobs through Chromium.
#
#   scripts/browser-test.sh [pytest arguments]
#
# WEB_CLIENT_SCREENSHOT=docs/web-client.png refreshes the screenshot in the docs (the default
# writes it to target/browser/).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== web client: the reference page (web/) in headless Chromium against the local run"

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "installing chromium and chromium-driver (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
# Both come from Debian's one chromium source package, so they always match.
chromium --version 2>/dev/null
chromedriver --version

python=$(bash scripts/venv.sh target/browser/venv -r tests/browser/requirements.txt)

cargo build --quiet -p local
# Selenium is given the browser and the driver: it must not look for (or download) its own.
SE_OFFLINE=true LOCAL_BIN=target/debug/local \
    "$python" -m pytest tests/browser -v -p no:cacheprovider --durations=0 "$@"
