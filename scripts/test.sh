#!/usr/bin/env bash
# Installs what the tests need (cached), type-checks, and runs them: bash scripts/test.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
rm -f demo/*.pyi  # written by Gradio at run time; mypy would read it instead of the module
python -m mypy
python -m pytest "$@"
