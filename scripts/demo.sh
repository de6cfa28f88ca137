#!/usr/bin/env bash
# The whole mksgn pipeline on the built-in synthetic skeleton data. Extra arguments go to `mksgn demo`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
cd "$repo"
exec mksgn demo "$@"
