#!/usr/bin/env bash
# The test suite (fast tests; slow learning tests run with: scripts/test.sh -m slow), on every core
# (pytest-xdist: one test process per core; -n 0 after it runs them in this process).
source "$(dirname "$0")/env.sh"
python -m pytest -q -n auto "$@"
