#!/usr/bin/env bash
# Installs what the tests need (cached) and runs them: bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m pytest "$@"
