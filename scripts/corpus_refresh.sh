#!/usr/bin/env bash
# Rebuilds tests/corpus/ from its public sources (tests/corpus/README.md says what each is). Not
# part of CI: the corpus is committed, and CI runs it (tests/it/corpus.rs). Run it by hand after a
# version bump below or of lambda_http / aws_lambda_events in Cargo.lock.
# Needs: cargo's registry cache holding the crates (any build of this repository fetches them),
# and PyPI for SAM CLI (installed in a virtualenv of its own; `generate-event` needs no Docker).
set -euo pipefail
cd "$(dirname "$0")/.."

SAM_CLI_VERSION=1.170.0
corpus=tests/corpus
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"

locked() { # the version of crate $1 in Cargo.lock
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

crate_dir() { # the unpacked crate $1 at version $2
    local dir
    dir=$(ls -d "$registry"/*/"$1-$2" 2>/dev/null | head -1)
    [ -n "$dir" ] || { echo "$1 $2 is not in $registry: run cargo fetch" >&2; exit 1; }
    echo "$dir"
}

events_version=$(locked aws_lambda_events)
http_version=$(locked lambda_http)

rm -rf "$corpus"/aws_lambda_events-* "$corpus"/lambda_http-* "$corpus"/aws-sam-cli-*

dest="$corpus/aws_lambda_events-$events_version"
mkdir -p "$dest"
cp "$(crate_dir aws_lambda_events "$events_version")"/src/fixtures/*.json "$dest/"

dest="$corpus/lambda_http-$http_version"
mkdir -p "$dest"
cp "$(crate_dir lambda_http "$http_version")"/tests/data/*.json "$dest/"

venv="${SAM_CLI_VENV:-$HOME/.cache/export-job-status/sam-cli}"
if ! "$venv/bin/sam" --version 2>/dev/null | grep -q " $SAM_CLI_VERSION\$"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION"
fi
export SAM_CLI_TELEMETRY=0
dest="$corpus/aws-sam-cli-$SAM_CLI_VERSION"
mkdir -p "$dest"
# Every event SAM CLI can generate, with its default values: service and event from its mapping.
mapping=$("$venv/bin/python" -c 'import samcli.lib.generated_sample_events as m, os; print(os.path.join(os.path.dirname(m.__file__), "event-mapping.json"))')
"$venv/bin/python" -c 'import json, sys
for service, events in json.load(open(sys.argv[1])).items():
    for event in events:
        print(service, event)' "$mapping" |
    while read -r service event; do
        "$venv/bin/sam" local generate-event "$service" "$event" </dev/null >"$dest/$service-$event.json"
    done

echo "corpus: $(find "$corpus" -name '*.json' | wc -l) events"
