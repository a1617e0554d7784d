#!/bin/bash
# mosaic-gpu: mosaic_mpi job, 2 node(s) x (4 workers + the head on the first), 4 thread(s) and 4 GPU(s) per node (SLURM, GPU; written by mscript).
# Submit with `sbatch jobscripts/slurm_gpu.sh`; `sbatch --OPTION ...` on the command line overrides any line below.
# Job name, as squeue shows it and in the output file's name:
#SBATCH --job-name=mosaic-gpu
# Nodes for the workers; rank 0 (the head) runs on the first of them:
#SBATCH --nodes=2
# Ranks per node: the workers plus one slot for the head (asked on every node so the request is even):
#SBATCH --ntasks-per-node=5
# CPUs per rank, one per worker thread:
#SBATCH --cpus-per-task=4
# GPUs per node; sbatch exports SLURM_GPUS_PER_NODE, from which the srun step gets them too:
#SBATCH --gpus-per-node=4
# Memory per node (host memory, not GPU memory):
#SBATCH --mem=64G
# Wall-clock limit, HH:MM:SS:
#SBATCH --time=02:00:00
# Standard output and error, in the directory sbatch ran in (%x = job name, %j = job id):
#SBATCH --output=%x-%j.out
# GPU nodes are often in their own partition: your site may need `#SBATCH --partition=...` and `#SBATCH --account=...` here.

set -euo pipefail                          # stop at the first command that fails
# (no virtual environment: mrun and python are those on PATH; mscript --venv PATH adds one)
cd "${SLURM_SUBMIT_DIR:-.}"                # run in the directory sbatch ran in (relative paths below)
export CUDA_DEVICE_ORDER=PCI_BUS_ID        # number the GPUs as nvidia-smi does
# Every rank of a node sees all 4 GPU(s) of that node: pick one per worker in your code (e.g. worker index modulo 4).
nvidia-smi -L || true                      # list the GPUs the job got, in the output file (no failure if the tool is missing)
echo "job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: $SLURM_NNODES node(s)"   # where it ran, for the output file
mrun --verbose -n 2 -nw 4 -nth 4 python forward.py   # prints its launch command (--verbose), then runs 1 + 2 x 4 ranks via srun --mpi=pmi2 (or mpiexec); sets OMP_NUM_THREADS & co.; its exit code is the job's
