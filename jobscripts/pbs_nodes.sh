#!/bin/bash
# mosaic-nodes: mosaic_mpi job, 4 node(s) x (8 workers + the head on the first), 4 thread(s) per worker (PBS Pro / OpenPBS, CPU; written by mscript).
# Submit with `qsub jobscripts/pbs_nodes.sh`; `qsub -l ...` on the command line overrides the lines below.
# Job name, as qstat shows it and in the output file's name:
#PBS -N mosaic-nodes
# One chunk per node: CPUs = ranks x threads, mpiprocs = ranks (each host appears that often in PBS_NODEFILE; mrun counts it once), mem = memory:
#PBS -l select=4:ncpus=36:mpiprocs=9:ompthreads=4:mem=64gb
# Each chunk on its own node, not shared with other jobs (Torque instead: `#PBS -l nodes=4:ppn=36`):
#PBS -l place=scatter:excl
# Wall-clock limit, HH:MM:SS:
#PBS -l walltime=02:00:00
# Standard error joined to standard output, in mosaic-nodes.o<job id> in the directory qsub ran in:
#PBS -j oe
# Your site may also need `#PBS -q QUEUE` and `#PBS -A ACCOUNT` here.

set -euo pipefail                          # stop at the first command that fails
# (no virtual environment: mrun and python are those on PATH; mscript --venv PATH adds one)
cd "${PBS_O_WORKDIR:-.}"                   # PBS starts jobs in $HOME: go back to where qsub ran (relative paths below)
# OMP_PROC_BIND is left unset: ranks started by mpiexec are not pinned, so bound threads would pile onto the same cores.
echo "job ${PBS_JOBID:-?} on: $(sort -u "$PBS_NODEFILE" | tr '\n' ' ')"   # where it ran, for the output file
mrun --verbose -n 4 -nw 8 -nth 4 python examples/ultrasound_forward_2d.py --output "output-$PBS_JOBID"   # prints its launch command (--verbose), then runs 1 + 4 x 8 ranks via mpiexec on the PBS_NODEFILE hosts; sets OMP_NUM_THREADS & co.; its exit code is the job's
