"""The worker's side of collective tessera arrays (SPEC S29): their own thread, in one order.

A collective array's members live on distinct workers and share a communicator of their own
(:func:`mosaic_mpi.comms.groups.create_group`), which their methods reach with
:func:`mosaic_mpi.comm` and use for blocking MPI collectives (``comm.Allreduce``).

Where the work runs. Every task of a member tessera (its construction, which builds the
communicator, and every method and attribute access) runs on the worker's *collective thread*,
one at a time, never on the event loop and never on the progress thread:

- the progress thread keeps moving data and sending heartbeats while a member waits inside a
  collective for the other members (mpi4py releases the GIL inside blocking MPI calls, and the
  runtime runs MPI at ``MPI_THREAD_MULTIPLE``);
- the event loop keeps running the rank's other tesserae, so a member blocked in a collective
  never holds back a task that another member (or the head) is waiting for.

In which order. The head is the only rank that builds collective arrays and calls them, and it
sends their records to each worker in the order it makes them; records from one source arrive in
the order sent. Each worker numbers the records of its member tesserae in arrival order (so the
numbers follow the head's order) and its collective thread runs the tasks strictly by number,
waiting for a task whose arguments are still on their way rather than running a later one. So
on every worker the collective work of all arrays runs in one global order (the head's), and two
arrays sharing workers cannot deadlock each other: the earliest unfinished call in the head's
order is, on each of its members, the next one to run there.
"""

import functools
import inspect
import itertools
import logging
import signal
import threading

from ..comms.groups import create_group, free_group
from ..comms.wire import STOP_SIGNALS
from ..core.collective import is_local
from ..core.task import TaskStatus
from ..core.worker_task import reset_current_task, set_current_task
from ..errors import CollectiveError
from ..messages import Op
from .ownership import snapshot
from .worker import TesseraHost

__all__ = ['CollectiveRunner', 'CollectiveHost', 'comm']

_log = logging.getLogger(__name__)

_here = threading.local()           # .member: (host, allowed) while a member's task runs


def comm():
    """The communicator of the collective array whose method is running here.

    Returns
    -------
    mpi4py.MPI.Intracomm
        Its group is the array's members, in order: the member's rank in it is its index in the
        array, its size the array's length.

    Raises
    ------
    CollectiveError
        Outside the constructor or a method of a collective array's member (a plain tessera, the
        head, a ``@mosaic.local`` method, an attribute read or write): there is no communicator
        whose other members would take part in a collective.
    """
    member = getattr(_here, 'member', None)
    if member is None:
        raise CollectiveError('mosaic.comm() is only available inside the constructor or a method '
                              'of a collective tessera array (Cls.remote(len=N, collective=True))')
    host, allowed = member
    if not allowed:
        task = getattr(_here, 'task', None)
        raise CollectiveError(f'mosaic.comm() is not available in {host.name}.'
                              f'{task.method if task is not None else "?"}: a '
                              f'@mosaic.local method or an attribute access may run on one member '
                              f'alone, so no collective may be called there')
    return host.comm


class CollectiveRunner:
    """The collective thread of one worker: runs numbered jobs strictly in number order.

    Numbers are handed out (:meth:`number`) on the worker loop in the order the head's records
    arrive; a job is submitted when its task is ready to run, possibly out of order, and waits
    for every smaller number to have run or been skipped.

    Parameters
    ----------
    rank : int
        The worker's rank (names the thread).
    """

    def __init__(self, rank):
        self.rank = rank
        self._numbers = itertools.count()
        self._jobs = {}
        self._next = 0
        self._cond = threading.Condition()
        self._closed = False
        self.busy = False               # a job is running (user code, maybe inside MPI)
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f'mosaic-collective-{rank}')
        self._thread.start()

    def number(self):
        """The next number in arrival order (worker loop only)."""
        return next(self._numbers)

    def submit(self, number, job):
        """Run ``job()`` on the collective thread once every smaller number is done.

        Parameters
        ----------
        number : int
            From :meth:`number`.
        job : callable or None
            ``None`` skips the number (a task that fails without running).
        """
        with self._cond:
            self._jobs[number] = job
            self._cond.notify()

    def close(self):
        """End the thread once the jobs submitted so far have run (it never runs another)."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _main(self):
        if hasattr(signal, 'pthread_sigmask'):      # Ctrl-C and stops go to the main thread
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        cond = self._cond
        while True:
            with cond:
                cond.wait_for(lambda: self._next in self._jobs or self._closed)
                if self._next not in self._jobs:
                    return
                job = self._jobs.pop(self._next)
                self._next += 1
                self.busy = job is not None
            if job is None:
                continue
            try:
                job()
            except BaseException:       # a job reports its own errors; never end the thread
                _log.exception('worker:%d: collective job failed', self.rank)
            finally:
                self.busy = False


class CollectiveHost(TesseraHost):
    """A member of a collective array on this worker: its tasks run on the collective thread.

    Parameters
    ----------
    worker : Worker
        The worker hosting it.
    tessera_id : int
        Its id.
    name : str
        Class name, for messages.
    ranks : tuple of int
        The ranks of all the array's members, in member order.
    index : int
        This member's index (its rank in the array's communicator).
    runner : CollectiveRunner
        The worker's collective thread.
    parent : mpi4py.MPI.Intracomm
        The runtime's private communicator, on which the array's communicator is made.
    """

    def __init__(self, worker, tessera_id, name, ranks, index, runner, parent):
        super().__init__(worker, tessera_id, name)
        self.ranks = tuple(ranks)
        self.index = index
        self.runner = runner
        self.parent = parent
        self.comm = None
        self.numbers = {}               # task id -> its number in the collective order

    def _run(self, task):
        number = self.numbers.pop(task.uid)
        if task.dependency_error is not None or self.error is not None:
            self.runner.submit(number, None)
            super()._run(task)          # fails it, running nothing
            return
        task.status = TaskStatus.RUNNING
        self.busy = True
        self.current = task
        if self.worker.timeline is not None:
            self.worker.timeline.start(task)
        self.runner.submit(number, functools.partial(self._job, task))

    def _job(self, task):
        """On the collective thread: build the communicator (construction), run the task."""
        allowed = task.op is None or (task.op is Op.CALL
                                      and not is_local(type(self.obj), task.method))
        token = set_current_task(task)
        _here.member, _here.task = (self, allowed), task
        value = error = None
        try:
            if task.op is None:
                self.comm = create_group(self.parent, self.ranks)
            value = self._invoke(task)
            # A coroutine means an async def method; other awaitables (a TaskProxy or tessera
            # proxy the method returns) are values like any other.
            if inspect.iscoroutine(value):
                value.close()
                value = None
                raise TypeError(f'{self.name}.{task.method} is a coroutine function: methods of '
                                f'a collective array must be plain functions (def, not async '
                                f'def), as they run on the worker\'s collective thread')
        except BaseException as exc:
            error = exc
        finally:
            _here.member = _here.task = None
            reset_current_task(token)
        try:
            self.worker.loop.call_soon_threadsafe(self._done, task, value, error)
        except RuntimeError:            # the loop has closed: the run ended meanwhile
            pass

    def _done(self, task, value, error):
        """On the loop: store the outcome, run the next queued task."""
        self.busy = False
        self.current = None
        if error is not None:
            self._fail(task, error)
        else:
            task.release_args()
            task.set_result(snapshot(value))
        self.pump()

    def close(self):
        """The tessera is gone: free its communicator."""
        if self.comm is not None:
            free_group(self.comm)
            self.comm = None
