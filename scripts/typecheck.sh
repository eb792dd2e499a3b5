#!/usr/bin/env bash
# Type-check the whole package as it is installed: rltransfer/ with agents/ and envs/ as
# rltransfer.agents and rltransfer.envs (pyproject's package-dir), so that every import between them
# is checked (mypy alone cannot follow the package-dir mapping). Reported paths are the installed
# ones: rltransfer/agents/x.py is agents/x.py here, rltransfer/envs/x.py is envs/x.py.
# The benchmarks too (run by hand, never by the tests): a name they use that the package no longer has fails here.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
view="$(mktemp -d)"
trap 'rm -rf "$view"' EXIT
mkdir "$view/rltransfer"
for f in "$root"/rltransfer/*; do ln -s "$f" "$view/rltransfer/$(basename "$f")"; done
ln -s "$root/agents" "$view/rltransfer/agents"
ln -s "$root/envs" "$view/rltransfer/envs"
mkdir "$view/benchmarks"
for f in "$root"/benchmarks/*.py; do ln -s "$f" "$view/benchmarks/$(basename "$f")"; done
cd "$view"
mypy --config-file "$root/pyproject.toml" -p rltransfer
mypy --config-file "$root/pyproject.toml" --follow-imports=silent benchmarks/*.py
