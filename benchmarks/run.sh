#!/usr/bin/env bash
# Runs the Grad-CAM benchmark: ./benchmarks/run.sh [bench_gradcam.py options, e.g. --quick]
#
# The peer libraries of benchmarks/requirements.txt are installed once, with
# --no-deps, into a folder cached under ~/.cache/gradcam-demo (keyed on that file
# and the Python version) and put on PYTHONPATH for this run only: the project's
# environment (scripts/env.sh) is not modified, and its torch, torchvision, numpy
# and opencv-python-headless are the ones the peers use.
#   GRADCAM_ENV_CACHE   where environments are kept (default: ~/.cache/gradcam-demo)
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
source "$bench_dir/../scripts/env.sh"  # builds (once) and activates the project venv, cd's to the root

requirements="$bench_dir/requirements.txt"
key=$(python -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read() + sys.version.encode()).hexdigest()[:16])' "$requirements")
cache=${GRADCAM_ENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gradcam-demo}
peers=$cache/bench-peers-$key
have_flock=$(command -v flock >/dev/null 2>&1 && echo 1 || true)

mkdir -p "$cache"
[ -n "$have_flock" ] && exec 8>"$peers.lock"
if [ ! -f "$peers/.complete" ]; then
    # One install at a time: a second caller waits for the first, then reuses its folder.
    [ -n "$have_flock" ] && flock 8
fi
if [ ! -f "$peers/.complete" ]; then
    echo "Installing the peer libraries into $peers (first run only) ..." >&2
    rm -rf "$peers"
    if ! python -m pip install --disable-pip-version-check -q --no-deps --target "$peers" -r "$requirements"; then
        rm -rf "$peers"
        echo "error: installing benchmarks/requirements.txt failed (see above)" >&2
        exit 1
    fi
    # --no-deps checks nothing: import each peer the way the benchmark does, so a
    # missing dependency fails here, once, with the module's name.
    if ! PYTHONPATH="$peers" python -c '
import captum.attr, pytorch_grad_cam, torchcam.methods
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
'; then
        rm -rf "$peers"
        echo "error: a peer library does not import; add the missing module to benchmarks/requirements.txt" >&2
        exit 1
    fi
    # The project's own packages must still win: nothing in the folder may shadow them.
    for shadowed in torch torchvision numpy cv2 PIL matplotlib tqdm; do
        if [ -e "$peers/$shadowed" ]; then
            rm -rf "$peers"
            echo "error: the peer folder would shadow the project's $shadowed" >&2
            exit 1
        fi
    done
    touch "$peers/.complete"
    # Folders installed from older requirement files: drop the ones nobody is using.
    for old in "$cache"/bench-peers-*; do
        case "$old" in "$peers"|*.lock) continue ;; esac
        [ -d "$old" ] && [ -n "$have_flock" ] || continue
        ( flock -n 7 && rm -rf "$old" ) 7>"$old.lock" && rm -f "$old.lock" || true
    done
fi
# Held, shared, while the benchmark runs (the descriptor survives the exec below).
[ -n "$have_flock" ] && flock -s 8

export PYTHONPATH="$peers${PYTHONPATH:+:$PYTHONPATH}"
exec python "$bench_dir/bench_gradcam.py" "$@"
