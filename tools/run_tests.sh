#!/usr/bin/env bash
# Set up the environment (tools/setup_env.sh) and run the test suite.
#   bash tools/run_tests.sh [pytest args...]
# Every test runs on one CPU thread, so the suite is spread over one process
# per core (pytest-xdist, at most 4, whole test files per process);
# MMSSL_TEST_WORKERS=0 runs it in this process.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/tools/setup_env.sh"
VENV="${MMSSL_VENV:-$REPO/.venv}"
cd "$REPO"
WORKERS="${MMSSL_TEST_WORKERS:-auto}"
exec "$VENV/bin/python" -m pytest tests -q -p no:cacheprovider \
    -n "$WORKERS" --maxprocesses 4 --dist loadfile "$@"
