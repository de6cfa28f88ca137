#!/usr/bin/env bash
# Style checks and the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
cd "$repo"
ruff check .
ruff format --check .
exec pytest "$@"
