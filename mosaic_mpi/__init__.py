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

from . import context as _context
from .api import run, init, interactive, stop, runtime, gather
from .comms.spawn import SpawnError, ThreadLevelError
from .logs import logger
from .core.task import (TaskProxy, TaskOutputGenerator, TaskOutput, TaskDone, TaskStatus, Task,
                        current_task)
from .core.tessera import tessera, TesseraProxy, ArrayProxy, TaskArray
from .core.warehouse_object import WarehouseObject
from .core.collective import CollectiveArray, local
from .runtime.collective import comm
from .errors import (MosaicError, RemoteError, RemoteTraceback, DependencyError,
                     SerialisationError, RuntimeNotRunning, RuntimeDisconnectedError,
                     DeadlockError, CollectiveError)

__version__ = '0.1.0'

__all__ = ['run', 'init', 'interactive', 'stop', 'runtime', 'gather', 'logger', 'tessera',
           'TesseraProxy', 'ArrayProxy', 'TaskArray', 'TaskProxy', 'TaskOutputGenerator',
           'TaskOutput', 'TaskDone', 'TaskStatus', 'Task', 'current_task', 'WarehouseObject',
           'MosaicError', 'RemoteError', 'RemoteTraceback', 'DependencyError',
           'SerialisationError', 'RuntimeNotRunning', 'RuntimeDisconnectedError',
           'DeadlockError', 'SpawnError', 'ThreadLevelError', 'CollectiveArray', 'local', 'comm',
           'CollectiveError', '__version__']

_logging.getLogger('mosaic_mpi').addHandler(_logging.NullHandler())


def __getattr__(name):
    # As in Mosaic, other names are looked up on the running runtime: mosaic.num_workers,
    # mosaic.get_workers(), mosaic.get_event_loop(), ...
    current = _context.current()
    if current is not None and not name.startswith('_'):
        try:
            return getattr(current, name)
        except AttributeError:
            pass
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}'
                         + ('' if current is not None else ' (and no runtime is running)'))
