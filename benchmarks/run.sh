#!/usr/bin/env bash
# Runs one benchmark experiment in the project environment:
#   bash benchmarks/run.sh engine|peers|render|app|page|gpu|evaluate|flood|decode|kinds|video|live|methods [--quick] [options of that experiment]
#
# scripts/env.sh builds (once) and activates the project's venv, which installs
# the peer libraries of benchmarks/requirements.txt with --no-deps, so nothing is
# installed here. Each experiment prints markdown on stdout and progress on
# stderr; `--help` lists its options. See docs/benchmarks.md.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
experiments="engine peers render app page gpu evaluate flood decode kinds video live methods"
usage="usage: bash benchmarks/run.sh {${experiments// /|}} [--quick] [options]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
experiment=$1
shift
case " $experiments " in
    *" $experiment "*) ;;
    *) echo "unknown experiment '$experiment'; $usage" >&2; exit 2 ;;
esac
# shellcheck disable=SC1091
source "$bench_dir/../scripts/env.sh"  # activates the venv and cd's to the repository root
exec python "$bench_dir/bench_$experiment.py" "$@"
