#!/bin/bash
# {{NAME}}: mosaic_mpi job, {{NODES}} node(s) x ({{WORKERS}} workers + the head on the first), {{THREADS}} thread(s) and {{GPUS}} GPU(s) per node (SLURM, GPU; written by mscript).
# Submit with `sbatch {{SCRIPT}}`; `sbatch --OPTION ...` on the command line overrides any line below.
# Job name, as squeue shows it and in the output file's name:
#SBATCH --job-name={{NAME}}
# Nodes for the workers; rank 0 (the head) runs on the first of them:
#SBATCH --nodes={{NODES}}
# Ranks per node: the workers plus one slot for the head (asked on every node so the request is even):
#SBATCH --ntasks-per-node={{TASKS_PER_NODE}}
# CPUs per rank, one per worker thread:
#SBATCH --cpus-per-task={{THREADS}}
# GPUs per node; sbatch exports SLURM_GPUS_PER_NODE, from which the srun step gets them too:
#SBATCH --gpus-per-node={{GPUS}}
# Memory per node (host memory, not GPU memory):
{{MEM_DIRECTIVE}}
# Wall-clock limit, HH:MM:SS:
#SBATCH --time={{TIME}}
# Standard output and error, in the directory sbatch ran in (%x = job name, %j = job id):
#SBATCH --output=%x-%j.out
# GPU nodes are often in their own partition: your site may need `#SBATCH --partition=...` and `#SBATCH --account=...` here.

set -euo pipefail                          # stop at the first command that fails
{{ACTIVATE}}
cd "${SLURM_SUBMIT_DIR:-.}"                # run in the directory sbatch ran in (relative paths below)
export CUDA_DEVICE_ORDER=PCI_BUS_ID        # number the GPUs as nvidia-smi does
# Every rank of a node sees all {{GPUS}} GPU(s) of that node: pick one per worker in your code (e.g. worker index modulo {{GPUS}}).
nvidia-smi -L || true                      # list the GPUs the job got, in the output file (no failure if the tool is missing)
echo "job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: $SLURM_NNODES node(s)"   # where it ran, for the output file
mrun {{MRUN_OPTIONS}}-n {{NODES}} -nw {{WORKERS}} -nth {{THREADS}} {{COMMAND}}   # prints its launch command (--verbose), then runs 1 + {{NODES}} x {{WORKERS}} ranks via srun --mpi=pmi2 (or mpiexec); sets OMP_NUM_THREADS & co.; its exit code is the job's
