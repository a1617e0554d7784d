#!/usr/bin/env bash
# Start-up / shutdown / idle-CPU benchmark of mosaic_mpi against raw mpi4py (see
# bench/bench_lifecycle.py for what is measured).
#
#   bench/run_lifecycle.sh [-n RANKS] [bench_lifecycle.py options, e.g. --quick]
#
# Two launches, each with its launch time (date +%s.%N) passed as --t0 and its end time (when
# mpiexec returned) appended to its log as "EXITED <time>":
#   1. --raw-only: MPI start-up, first raw round trip, exit  -> raw start-up and shutdown
#   2. full run: raw phase, then mosaic.run                  -> everything else
# then the combined table. Logs are kept in a temporary directory (printed at the end).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ranks=2
if [ "${1:-}" = "-n" ]; then ranks=$2; shift 2; fi
logs=$(mktemp -d /tmp/mosaic_lifecycle.XXXXXX)

t0=$(date +%s.%N)
mpiexec -n "$ranks" python "$here/bench_lifecycle.py" --raw-only --t0 "$t0" "$@" > "$logs/raw.log"
echo "EXITED $(date +%s.%N)" >> "$logs/raw.log"

t0=$(date +%s.%N)
mpiexec -n "$ranks" python "$here/bench_lifecycle.py" --t0 "$t0" "$@" > "$logs/full.log"
echo "EXITED $(date +%s.%N)" >> "$logs/full.log"

grep '^machine:' "$logs/full.log" || true
python "$here/bench_lifecycle.py" --summarize "$logs/raw.log" "$logs/full.log"
echo "logs: $logs"
