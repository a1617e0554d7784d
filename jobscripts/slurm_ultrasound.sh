#!/bin/bash
# SLURM jobscript for the main job: 1 head + (ntasks - 1) solver workers.
# Submit with: sbatch jobscripts/slurm_ultrasound.sh [extra options for the job]
#SBATCH --job-name=mosaic-ultrasound
#SBATCH --ntasks=9
#SBATCH --cpus-per-task=1
#SBATCH --time=00:30:00
#SBATCH --output=mosaic-ultrasound-%j.out

set -euo pipefail
# One numpy thread per rank: the parallelism comes from the workers.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
srun --ntasks="$SLURM_NTASKS" python examples/ultrasound_forward_2d.py --output "output-$SLURM_JOB_ID" "$@"
