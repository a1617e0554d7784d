"""mosaic_mpi: Mosaic's actor (tessera) runtime for scientific Python, on MPI.

Use it as ``import mosaic_mpi as mosaic``::

    @mosaic.tessera
    class Solver:
        def solve(self, x):
            return 2 * x

    async def main(runtime):
        solver = Solver.remote()
        task = solver.solve(21)
        print(await task.result())      # 42

    mosaic.run(main)                    # under `mpiexec -n 2 python script.py`
"""

import logging as _logging

from .api import run, init, interactive, stop, runtime, gather
from .comms.spawn import SpawnError, ThreadLevelError
from .core.task import TaskProxy, TaskOutputGenerator, TaskOutput, TaskDone, TaskStatus
from .core.tessera import tessera, TesseraProxy, ArrayProxy, TaskArray
from .errors import (MosaicError, RemoteError, RemoteTraceback, DependencyError,
                     SerialisationError, RuntimeNotRunning)

__version__ = '0.1.0'

__all__ = ['run', 'init', 'interactive', 'stop', 'runtime', 'gather', 'tessera', 'TesseraProxy',
           'ArrayProxy', 'TaskArray', 'TaskProxy', 'TaskOutputGenerator', 'TaskOutput', 'TaskDone', 'TaskStatus',
           'MosaicError', 'RemoteError', 'RemoteTraceback', 'DependencyError',
           'SerialisationError', 'RuntimeNotRunning', 'SpawnError', 'ThreadLevelError',
           '__version__']

_logging.getLogger('mosaic_mpi').addHandler(_logging.NullHandler())
