#!/usr/bin/env bash
# The test suite (fast tests; slow learning tests run with: scripts/test.sh -m slow).
source "$(dirname "$0")/env.sh"
python -m pytest -q "$@"
