#!/bin/bash
# {{NAME}}: mosaic_mpi job, {{NODES}} node(s) x ({{WORKERS}} workers + the head on the first), {{THREADS}} thread(s) per worker (SLURM, CPU; written by mscript).
# Submit with `sbatch {{SCRIPT}}`; `sbatch --OPTION ...` on the command line overrides any line below.
# Job name, as squeue shows it and in the output file's name:
#SBATCH --job-name={{NAME}}
# Nodes for the workers; rank 0 (the head) runs on the first of them:
#SBATCH --nodes={{NODES}}
# Ranks per node: the workers plus one slot for the head (asked on every node so the request is even):
#SBATCH --ntasks-per-node={{TASKS_PER_NODE}}
# CPUs per rank, one per worker thread:
#SBATCH --cpus-per-task={{THREADS}}
# Memory per node:
{{MEM_DIRECTIVE}}
# Wall-clock limit, HH:MM:SS:
#SBATCH --time={{TIME}}
# Standard output and error, in the directory sbatch ran in (%x = job name, %j = job id):
#SBATCH --output=%x-%j.out
# Your site may also need `#SBATCH --partition=...` and `#SBATCH --account=...` here.

set -euo pipefail                          # stop at the first command that fails
{{ACTIVATE}}
cd "${SLURM_SUBMIT_DIR:-.}"                # run in the directory sbatch ran in (relative paths below)
# OMP_PROC_BIND is left unset: ranks started by mpiexec are not pinned, so bound threads would pile onto the same cores.
echo "job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: $SLURM_NNODES node(s)"   # where it ran, for the output file
mrun {{MRUN_OPTIONS}}-n {{NODES}} -nw {{WORKERS}} -nth {{THREADS}} {{COMMAND}}   # prints its launch command (--verbose), then runs 1 + {{NODES}} x {{WORKERS}} ranks via srun --mpi=pmi2 (or mpiexec); sets OMP_NUM_THREADS & co.; its exit code is the job's
