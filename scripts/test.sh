#!/usr/bin/env bash
# Installs what the tests need (cached), lints, type-checks, and runs them: bash scripts/test.sh [pytest args]
# (the quick lane: bash scripts/test.sh -m "not slow")
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m ruff check .
python -m mypy
python -m pytest "$@"
