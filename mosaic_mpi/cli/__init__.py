"""Command-line tools: ``mrun`` (start a run) and ``mscript`` (write a batch jobscript).

``hosts`` finds the machines of the batch allocation we run in (SLURM, PBS, or none),
``launch`` turns "1 head + W workers per node on N nodes" into an ``mpiexec`` or ``srun`` command
and runs it, ``mrun`` and ``mscript`` are the click front ends. Nothing here imports the runtime:
the tools only start processes that do.
"""
