#!/usr/bin/env bash
# Installs what the app needs (cached) and serves it: bash scripts/app.sh [--share] [--port N]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python app.py "$@"
