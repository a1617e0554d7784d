"""The runtime's actor for the job: a :class:`~ultrasound.job.ShotRunner` hosted on a worker.

Importing this module imports ``mosaic_mpi``; the rest of the package does not need it.
The class is defined at module level so that workers unpickle it by reference.
"""

from __future__ import annotations

import mosaic_mpi as mosaic

from .job import ShotRunner

__all__ = ['ShotSolver']


@mosaic.tessera
class ShotSolver(ShotRunner):
    """Remote-capable :class:`~ultrasound.job.ShotRunner` (same constructor, same methods).

    ``ShotSolver(...)`` builds a plain local object; ``ShotSolver.remote(..., len=W)`` builds
    ``W`` of them on the runtime's workers. ``run_shot(source_index)`` returns the float32
    traces of shape ``(num_transducers, num_steps)``, computed by the very code that
    :func:`~ultrasound.job.forward_model_serial` runs.
    """
