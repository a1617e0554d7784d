#!/bin/bash
# mosaic-gpu: mosaic_mpi job, 2 node(s) x (4 workers + the head on the first), 4 thread(s) and 4 GPU(s) per node (PBS Pro / OpenPBS, GPU; written by mscript).
# Submit with `qsub jobscripts/pbs_gpu.sh`; `qsub -l ...` on the command line overrides the lines below.
# Job name, as qstat shows it and in the output file's name:
#PBS -N mosaic-gpu
# One chunk per node: CPUs = ranks x threads, mpiprocs = ranks (each host appears that often in PBS_NODEFILE; mrun counts it once), ngpus = GPUs, mem = memory:
#PBS -l select=2:ncpus=20:mpiprocs=5:ompthreads=4:ngpus=4:mem=64gb
# Each chunk on its own node, not shared with other jobs:
#PBS -l place=scatter:excl
# Wall-clock limit, HH:MM:SS:
#PBS -l walltime=02:00:00
# Standard error joined to standard output, in mosaic-gpu.o<job id> in the directory qsub ran in:
#PBS -j oe
# GPU nodes are often in their own queue: your site may need `#PBS -q QUEUE` and `#PBS -A ACCOUNT` here.

set -euo pipefail                          # stop at the first command that fails
# (no virtual environment: mrun and python are those on PATH; mscript --venv PATH adds one)
cd "${PBS_O_WORKDIR:-.}"                   # PBS starts jobs in $HOME: go back to where qsub ran (relative paths below)
export CUDA_DEVICE_ORDER=PCI_BUS_ID        # number the GPUs as nvidia-smi does
# Every rank of a node sees all 4 GPU(s) of that node: pick one per worker in your code (e.g. worker index modulo 4).
nvidia-smi -L || true                      # list the GPUs the job got, in the output file (no failure if the tool is missing)
echo "job ${PBS_JOBID:-?} on: $(sort -u "$PBS_NODEFILE" | tr '\n' ' ')"   # where it ran, for the output file
mrun --verbose -n 2 -nw 4 -nth 4 python forward.py   # prints its launch command (--verbose), then runs 1 + 2 x 4 ranks via mpiexec on the PBS_NODEFILE hosts; sets OMP_NUM_THREADS & co.; its exit code is the job's
