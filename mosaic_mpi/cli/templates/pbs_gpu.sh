#!/bin/bash
# {{NAME}}: mosaic_mpi job, {{NODES}} node(s) x ({{WORKERS}} workers + the head on the first), {{THREADS}} thread(s) and {{GPUS}} GPU(s) per node (PBS Pro / OpenPBS, GPU; written by mscript).
# Submit with `qsub {{SCRIPT}}`; `qsub -l ...` on the command line overrides the lines below.
# Job name, as qstat shows it and in the output file's name:
#PBS -N {{NAME}}
# One chunk per node: CPUs = ranks x threads, mpiprocs = ranks (each host appears that often in PBS_NODEFILE; mrun counts it once), ngpus = GPUs{{MEM_NOTE}}:
#PBS -l select={{NODES}}:ncpus={{NODE_CPUS}}:mpiprocs={{TASKS_PER_NODE}}:ompthreads={{THREADS}}:ngpus={{GPUS}}{{MEM_SELECT}}
# Each chunk on its own node, not shared with other jobs:
#PBS -l place=scatter:excl
# Wall-clock limit, HH:MM:SS:
#PBS -l walltime={{TIME}}
# Standard error joined to standard output, in {{NAME}}.o<job id> in the directory qsub ran in:
#PBS -j oe
# GPU nodes are often in their own queue: your site may need `#PBS -q QUEUE` and `#PBS -A ACCOUNT` here.

set -euo pipefail                          # stop at the first command that fails
{{ACTIVATE}}
cd "${PBS_O_WORKDIR:-.}"                   # PBS starts jobs in $HOME: go back to where qsub ran (relative paths below)
export CUDA_DEVICE_ORDER=PCI_BUS_ID        # number the GPUs as nvidia-smi does
# Every rank of a node sees all {{GPUS}} GPU(s) of that node: pick one per worker in your code (e.g. worker index modulo {{GPUS}}).
nvidia-smi -L || true                      # list the GPUs the job got, in the output file (no failure if the tool is missing)
echo "job ${PBS_JOBID:-?} on: $(sort -u "$PBS_NODEFILE" | tr '\n' ' ')"   # where it ran, for the output file
mrun {{MRUN_OPTIONS}}-n {{NODES}} -nw {{WORKERS}} -nth {{THREADS}} {{COMMAND}}   # prints its launch command (--verbose), then runs 1 + {{NODES}} x {{WORKERS}} ranks via mpiexec on the PBS_NODEFILE hosts; sets OMP_NUM_THREADS & co.; its exit code is the job's
