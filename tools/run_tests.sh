#!/usr/bin/env bash
# Set up the environment (tools/setup_env.sh) and run the test suite.
#   bash tools/run_tests.sh [pytest args...]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/tools/setup_env.sh"
VENV="${MMSSL_VENV:-$REPO/.venv}"
cd "$REPO"
exec "$VENV/bin/python" -m pytest tests -q -p no:cacheprovider "$@"
