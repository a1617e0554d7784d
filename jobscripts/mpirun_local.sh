#!/bin/bash
# Run any mosaic_mpi script on this machine: jobscripts/mpirun_local.sh NUM_WORKERS script.py [args]
# Uses N = NUM_WORKERS + 1 ranks (rank 0 is the head). Adds --oversubscribe for Open MPI.
set -euo pipefail
workers=${1:?number of workers}; shift
extra=()
if mpiexec --version 2>&1 | grep -q "Open MPI"; then extra=(--oversubscribe); fi
exec mpiexec "${extra[@]}" -n "$((workers + 1))" python "$@"
