#!/usr/bin/env bash
# Source this file: it builds (once) and activates the project's virtual environment.
#
# The environment is cached outside the checkout, keyed on the requirement files,
# so a second run (or CI on the same machine) reuses it; a fresh machine builds it
# from nothing. torch from PyPI brings several GB of CUDA libraries: the first
# build takes a few minutes.
#   GRADCAM_ENV_CACHE   where environments are kept (default: ~/.cache/gradcam-demo)
#   PYTHON              the Python to build it with (default: python3, 3.10 or newer)

_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_python=${PYTHON:-python3}
_fail() { echo "error: $*" >&2; return 1 2>/dev/null || exit 1; }

command -v "$_python" >/dev/null 2>&1 || { _fail "$_python not found; install Python 3.10 or newer"; return 1 2>/dev/null || exit 1; }
"$_python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { _fail "Python 3.10 or newer is needed, found $("$_python" --version 2>&1)"; return 1 2>/dev/null || exit 1; }

_requirements=("$_root/requirements.txt" "$_root/requirements-ray.txt" "$_root/requirements-hf.txt" "$_root/requirements-test.txt" "$_root/benchmarks/requirements.txt")
_key=$(cat "${_requirements[@]}" | "$_python" -c \
    'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read() + sys.version.encode()).hexdigest()[:16])')
_venv=${GRADCAM_ENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gradcam-demo}/venv-$_key

mkdir -p "$(dirname "$_venv")"
_have_flock=$(command -v flock >/dev/null 2>&1 && echo 1 || true)
[ -n "$_have_flock" ] && exec 9>"$_venv.lock"
if [ ! -f "$_venv/.complete" ]; then
    # One build at a time: a second caller waits for the first, then reuses its environment.
    [ -n "$_have_flock" ] && flock 9
fi
if [ ! -f "$_venv/.complete" ]; then
    echo "Building the environment in $_venv (first run only: torch is large, this takes minutes) ..." >&2
    rm -rf "$_venv"
    if "$_python" -m venv "$_venv" \
        && "$_venv/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip \
        && "$_venv/bin/python" -m pip install --disable-pip-version-check -q -r "$_root/requirements-test.txt" \
        && "$_venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps -r "$_root/benchmarks/requirements.txt"; then
        touch "$_venv/.complete"
        # Environments built from older requirement files are several GB each: drop
        # the ones nobody is using (a user holds its lock, shared, while it runs).
        for _old in "$(dirname "$_venv")"/venv-*; do
            case "$_old" in "$_venv"|*.lock) continue ;; esac
            [ -d "$_old" ] || continue
            if [ -n "$_have_flock" ]; then
                ( flock -n 7 && rm -rf "$_old" ) 7>"$_old.lock" && rm -f "$_old.lock" || true
            fi
        done
    else
        rm -rf "$_venv"
        _fail "installing the requirements failed (see above)"; return 1 2>/dev/null || exit 1
    fi
fi
# Held, shared, for as long as this shell and what it runs live.
[ -n "$_have_flock" ] && flock -s 9
# shellcheck disable=SC1091
source "$_venv/bin/activate"
cd "$_root" || exit 1
