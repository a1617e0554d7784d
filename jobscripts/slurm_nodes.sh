#!/bin/bash
# mosaic-nodes: mosaic_mpi job, 4 node(s) x (8 workers + the head on the first), 4 thread(s) per worker (SLURM, CPU; written by mscript).
# Submit with `sbatch jobscripts/slurm_nodes.sh`; `sbatch --OPTION ...` on the command line overrides any line below.
# Job name, as squeue shows it and in the output file's name:
#SBATCH --job-name=mosaic-nodes
# Nodes for the workers; rank 0 (the head) runs on the first of them:
#SBATCH --nodes=4
# Ranks per node: the workers plus one slot for the head (asked on every node so the request is even):
#SBATCH --ntasks-per-node=9
# CPUs per rank, one per worker thread:
#SBATCH --cpus-per-task=4
# Memory per node:
#SBATCH --mem=64G
# Wall-clock limit, HH:MM:SS:
#SBATCH --time=02:00:00
# Standard output and error, in the directory sbatch ran in (%x = job name, %j = job id):
#SBATCH --output=%x-%j.out
# Your site may also need `#SBATCH --partition=...` and `#SBATCH --account=...` here.

set -euo pipefail                          # stop at the first command that fails
# (no virtual environment: mrun and python are those on PATH; mscript --venv PATH adds one)
cd "${SLURM_SUBMIT_DIR:-.}"                # run in the directory sbatch ran in (relative paths below)
# OMP_PROC_BIND is left unset: ranks started by mpiexec are not pinned, so bound threads would pile onto the same cores.
echo "job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: $SLURM_NNODES node(s)"   # where it ran, for the output file
mrun --verbose -n 4 -nw 8 -nth 4 python examples/ultrasound_forward_2d.py --output "output-$SLURM_JOB_ID"   # prints its launch command (--verbose), then runs 1 + 4 x 8 ranks via srun --mpi=pmi2 (or mpiexec); sets OMP_NUM_THREADS & co.; its exit code is the job's
