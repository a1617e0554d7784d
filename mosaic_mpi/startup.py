"""How a process takes part in a runtime: the start-up of ``init``, ``run`` and ``interactive``.

Four ways to start, decided here (the MPI calls are :mod:`mosaic_mpi.comms.spawn`'s):

- **Under mpiexec** (or on any communicator given as ``comm=``, of 2 or more ranks): rank 0 of it is
  the head, the other ranks are the workers, every rank runs the script. ``num_workers``, if given,
  must be the size minus one.
- **Spawned** (a single process: ``python script.py``, a notebook, ``mpiexec -n 1``): the head
  starts ``num_workers`` processes with ``MPI_Comm_spawn`` and merges with them into one
  communicator (head = rank 0). ``run``/``init`` from a script spawn the same script with the same
  arguments (its children find their parent communicator in ``init`` and become workers: the same
  semantics as ``mpiexec -n W+1``); ``interactive('on')``, and a head whose ``__main__`` cannot be
  run again (``python -c``, a notebook), spawn ``python -m mosaic_mpi --worker``, which runs no user
  code: then what ``__main__`` defines travels by value (cloudpickle).
- **python -m mosaic_mpi script.py** under ``mpiexec -n N``: rank 0 runs the script as
  ``__main__``; ranks 1..N-1 wait in :func:`serve_module_worker` for the head's runtime and then
  serve in it, running no user code (``__main__`` travels by value, as above).

In the last two cases the workers take their settings from the head: right after the communicator
is formed the head broadcasts a *hand-off* (its configuration, the run's generation, whether
``__main__`` travels by value, its working directory and ``sys.path``), so a child's own
environment or arguments cannot make it disagree with the head (``max_chunk`` must be equal on both
sides of a transfer).
"""

import dataclasses
import itertools
import os
import socket
import sys
import threading

from .comms import mpi_world, spawn as mpi_spawn
from .config import Config
from .messages import RUN_SHIFT
from .runtime.runtime import Runtime
from .serialisation import set_main_by_value

__all__ = ['start', 'start_spawned_worker', 'serve_module_worker', 'expect_module_workers',
           'release_module_workers', 'WORKER_FLAG']

WORKER_FLAG = '--worker'         # python -m mosaic_mpi --worker: a spawned worker, no user code
_generations = itertools.count()
_module_world = None             # python -m mosaic_mpi, rank 0: the workers wait on this comm
_WATCH_PERIOD = 0.5              # s: how often a spawned worker checks that its head is alive


@dataclasses.dataclass
class _Handoff:
    settings: dict
    generation: int
    by_value: bool
    head: tuple                  # (host name, pid)
    cwd: str = None
    path: list = None


def _first_id(generation):
    return ((generation % 4096) << RUN_SHIFT) + 1


def _settings(config):
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(Config)
            if f.name != 'comm'}


def start(config, interactive=False):
    """Build this process's runtime.

    Parameters
    ----------
    config : Config
        Settings of the caller (a spawned worker uses its head's instead).
    interactive : bool
        Called by ``interactive('on')``: always spawn ``num_workers`` (default 1) generic workers.

    Returns
    -------
    Runtime
        The head's or a worker's runtime (a worker's must then :meth:`~Runtime.serve`). Its
        ``spawned`` attribute says whether its workers were spawned (such a run can be followed
        by another one in the same process).

    Raises
    ------
    ValueError
        ``num_workers`` disagrees with the communicator's size, or there would be no worker, or
        ``interactive`` was called under ``mpiexec -n N`` with N > 1.
    SpawnError
        The MPI library cannot spawn processes (the message says how to use mpiexec instead).
    ThreadLevelError
        MPI was initialised below ``MPI_THREAD_MULTIPLE``.
    """
    mpi_spawn.check_thread_level()
    if not interactive:
        group = mpi_spawn.join_parent()
        if group is not None:
            return _start_child(group)
    if _module_world is not None:
        if interactive:
            raise ValueError('interactive() spawns its own workers: under `python -m mosaic_mpi` '
                             'the workers are the other ranks already, call mosaic_mpi.run(main) '
                             'or init() instead')
        return _start_module_head(config)
    if config.comm is None and mpi_spawn.world_size() == 1:
        if interactive or config.num_workers is not None:
            return _spawn_head(config, config.num_workers or 1, interactive)
        raise ValueError('mosaic_mpi needs at least 2 ranks (1 head + 1 worker): start the script '
                         'with `mpiexec -n N python script.py` (N >= 2), or pass num_workers=W to '
                         'run()/init() to start W worker processes from this one')
    if interactive:
        raise ValueError('interactive() spawns its own workers and needs a single process (a '
                         'notebook, or `python script.py` without mpiexec); under `mpiexec -n N` '
                         'use mosaic_mpi.run(main) or init()')
    comm = config.comm if config.comm is not None else mpi_world()
    size = comm.Get_size()
    if config.num_workers is not None and size >= 2 and config.num_workers != size - 1:
        raise ValueError(f'num_workers={config.num_workers} but the communicator has {size} '
                         f'ranks, i.e. {size - 1} worker(s) beside the head: pass '
                         f'num_workers={size - 1}, leave it out, or launch with '
                         f'`mpiexec -n {config.num_workers + 1}`')
    set_main_by_value(False)
    return _make(config, next(_generations), spawned=False)


def _make(config, generation, spawned, group=None):
    rt = Runtime(config, first_id=_first_id(generation),
                 detach=group.disconnect if group is not None else None)
    rt.spawned = spawned
    return rt


def _rerun_args():
    """Arguments that run this process's ``__main__`` again, or ``None`` if it cannot be."""
    main = sys.modules.get('__main__')
    spec = getattr(main, '__spec__', None)
    name = getattr(spec, 'name', None)
    if name and name != '__main__':
        if name.endswith('.__main__'):
            name = name[:-len('.__main__')]
        if name == 'mosaic_mpi':
            return None
        return ['-m', name, *sys.argv[1:]]
    path = getattr(main, '__file__', None)
    if path and os.path.isfile(path) and sys.argv and sys.argv[0] not in ('', '-c'):
        return [os.path.abspath(path), *sys.argv[1:]]
    return None


def _spawn_head(config, num_workers, interactive):
    args = None if interactive else _rerun_args()
    by_value = args is None
    if by_value:
        args = ['-m', 'mosaic_mpi', WORKER_FLAG]
    try:
        group = mpi_spawn.spawn(sys.executable, args, num_workers, config.start_timeout)
    except mpi_spawn.SpawnTimeout as error:
        if interactive:
            raise               # the kernel lives on (without MPI): the user reads the error
        # A script: MPI is stuck in the spawning thread, so MPI_Finalize at exit would hang.
        sys.stderr.write(f'mosaic_mpi: {error}\n')
        sys.stderr.flush()
        os._exit(1)
    generation = next(_generations)
    config = dataclasses.replace(config, comm=group.comm, num_workers=num_workers)
    _hand_off(group.comm, config, generation, by_value)
    return _make(config, generation, spawned=True, group=group)


def _hand_off(comm, config, generation, by_value):
    handoff = _Handoff(_settings(config), generation, by_value, (socket.gethostname(), os.getpid()))
    if by_value:
        handoff.cwd = os.getcwd()
        handoff.path = list(sys.path)
    set_main_by_value(by_value)
    mpi_spawn.broadcast(comm, handoff)


def _start_child(group):
    handoff = mpi_spawn.broadcast(group.comm)
    _adopt(handoff)
    config = Config(**dict(handoff.settings, comm=group.comm, worker_exit=True))
    rt = _make(config, handoff.generation, spawned=True, group=group)
    _watch(handoff.head)
    return rt


def _adopt(handoff):
    """Take the head's working directory, import path and serialisation mode (generic workers)."""
    set_main_by_value(handoff.by_value)
    if handoff.cwd is not None:
        try:
            os.chdir(handoff.cwd)
        except OSError:             # another machine: keep ours
            pass
    if handoff.path is not None:
        sys.path[:0] = [p for p in handoff.path if p not in sys.path]


def _watch(head):
    """End this spawned worker if its head process dies (no orphan keeps running)."""
    host, pid = head
    if host != socket.gethostname():
        return

    def watch():
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                sys.stderr.write(f'mosaic_mpi: the head (pid {pid}) is gone: worker exits\n')
                sys.stderr.flush()
                os._exit(1)
            except PermissionError:     # alive, another user's
                pass
            stop.wait(_WATCH_PERIOD)

    stop = threading.Event()
    threading.Thread(target=watch, name='mosaic-head-watch', daemon=True).start()


def start_spawned_worker():
    """``python -m mosaic_mpi --worker``: the runtime of a worker spawned by a head.

    Returns
    -------
    Runtime
        The worker's runtime, to serve.

    Raises
    ------
    SystemExit
        If this process was not spawned by a mosaic_mpi head.
    """
    mpi_spawn.check_thread_level()
    group = mpi_spawn.join_parent()
    if group is None:
        raise SystemExit(f'python -m mosaic_mpi {WORKER_FLAG} is started by mosaic_mpi itself '
                         f'(MPI_Comm_spawn), not by hand')
    return _start_child(group)


# -- python -m mosaic_mpi script.py ----------------------------------------------------------------

def expect_module_workers(comm):
    """Rank 0 of ``python -m mosaic_mpi``: the other ranks of ``comm`` wait for its runtime.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        A duplicate of ``COMM_WORLD`` made by every rank.
    """
    global _module_world
    _module_world = comm


def _start_module_head(config):
    global _module_world
    if config.comm is not None:
        raise ValueError('under `python -m mosaic_mpi` the runtime uses every rank: do not pass '
                         'comm= (run the script with `mpiexec -n N python script.py` to choose '
                         'a communicator)')
    comm, _module_world = _module_world, None
    size = comm.Get_size()
    if config.num_workers is not None and config.num_workers != size - 1:
        # The workers are waiting for a hand-off: release them before raising.
        mpi_spawn.broadcast(comm, 1)
        raise ValueError(f'num_workers={config.num_workers} but `python -m mosaic_mpi` runs on '
                         f'{size} ranks ({size - 1} workers): pass num_workers={size - 1} or '
                         f'leave it out')
    generation = next(_generations)
    config = dataclasses.replace(config, comm=comm)
    _hand_off(comm, config, generation, by_value=True)
    return _make(config, generation, spawned=False)


def release_module_workers(code):
    """Rank 0 of ``python -m mosaic_mpi``, after the script: end workers no runtime used.

    Parameters
    ----------
    code : int
        Exit code the waiting workers end with.
    """
    global _module_world
    if _module_world is not None:
        comm, _module_world = _module_world, None
        mpi_spawn.broadcast(comm, int(code))


def serve_module_worker(comm):
    """Ranks 1..N-1 of ``python -m mosaic_mpi``: wait for the head's runtime and serve in it.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        A duplicate of ``COMM_WORLD`` made by every rank.

    Returns
    -------
    Runtime or int
        The worker's runtime, to serve; or the exit code if the head's script ended without
        starting a runtime.
    """
    handoff = mpi_spawn.broadcast(comm)
    if isinstance(handoff, int):
        return handoff
    _adopt(handoff)
    config = Config(**dict(handoff.settings, comm=comm, worker_exit=True))
    return _make(config, handoff.generation, spawned=False)
