"""The worker's record of a call (Mosaic's worker-side ``Task``); re-exported by
:mod:`mosaic_mpi.core.task`.
"""

import asyncio
import contextvars
import time

from .. import context
from .status import TaskStatus

__all__ = ['Task', 'current_task']

_CURRENT = contextvars.ContextVar('mosaic_mpi_current_task', default=None)


def current_task():
    """The worker-side :class:`Task` whose method is running (in that method's code).

    A method reaches its own task this way, for instance to attach timeline events:
    ``mosaic.current_task().add_event('converged', iterations=12)``.

    Returns
    -------
    Task or None
        ``None`` outside a tessera's method.
    """
    return _CURRENT.get()


def set_current_task(task):
    """Make ``task`` current in this context (the worker, around a method); returns a token."""
    return _CURRENT.set(task)


def reset_current_task(token):
    """Undo :func:`set_current_task`."""
    _CURRENT.reset(token)


class Task:
    """A call as its worker sees it.

    Parameters
    ----------
    task_id : int
        Unique id.
    tessera_id : int
        Tessera the call runs on.
    sender : int
        Rank that made the call.
    method : str
        Method (or attribute) name.
    local_rank : int
        Rank of this worker.
    """

    type = 'task'

    def __init__(self, task_id, tessera_id, sender, method, local_rank):
        self.uid = task_id
        self.tessera_id = tessera_id
        self.sender = sender
        self.method = method
        self.status = TaskStatus.PENDING
        self.retries = -1           # max_retries of the call (-1: the tessera's)
        self.collectable = True
        self.events = None
        self.profile = None
        self._args = ()
        self._kwargs = {}
        self._missing = 0
        self._removed = None
        self._error = None
        self._ready = None
        self._on_ready = None
        self._on_finish = None

    is_remote = True    #: the worker's side of a call (Mosaic's name)

    @property
    def sender_id(self):
        """str: uid of the caller: ``'head'`` or ``'worker:N'``."""
        return 'head' if self.sender == 0 else f'worker:{self.sender}'

    @property
    def remote_runtime(self):
        """WorkerHandle: the runtime that made the call (the head's is ``('head', 0, host)``)."""
        return context.require().client.handle_of(self.sender)

    @staticmethod
    def remote_cls():
        """type: the class of this task's remote side (the caller's ``TaskProxy``)."""
        from .task import TaskProxy
        return TaskProxy

    # -- arguments ---------------------------------------------------------------------------------

    def set_arguments(self, args, kwargs, missing, on_ready):
        """Install the call's arguments; ``missing`` slots are filled later by :meth:`fill`."""
        self._args = list(args)
        self._kwargs = kwargs
        self._missing = missing
        self._on_ready = on_ready

    def fill(self, slot, value, remove=False):
        """Put a dependency's value in its slot (or mark the slot for removal)."""
        if remove:
            if self._removed is None:
                self._removed = []
            self._removed.append(slot)
        elif isinstance(slot, str):
            self._kwargs[slot] = value
        else:
            self._args[slot] = value
        self._missing -= 1
        if self._missing == 0:
            self._finish_args()

    def fail_dependency(self, error):
        """A dependency failed: the task will not run; ``error`` is what it fails with."""
        if self._error is None:
            self._error = error
        self._missing -= 1
        if self._missing == 0:
            self._finish_args()

    def _finish_args(self):
        removed, self._removed = self._removed or (), None
        for slot in sorted((s for s in removed if not isinstance(s, str)), reverse=True):
            del self._args[slot]
        for slot in removed:
            if isinstance(slot, str):
                self._kwargs.pop(slot, None)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        if self._on_ready is not None:
            self._on_ready(self)

    @property
    def ready(self):
        """bool: all arguments are available (or a dependency failed)."""
        return self._missing == 0

    @property
    def dependency_error(self):
        """Exception or None: the error of a failed dependency."""
        return self._error

    async def prepare_args(self):
        """Wait until every dependency has arrived (or one failed)."""
        if self._missing == 0:
            return
        self._ready = asyncio.get_running_loop().create_future()
        await self._ready

    def release_args(self):
        """Forget the arguments (the call has returned: its values are the method's now)."""
        self._args = []
        self._kwargs = {}

    def args_value(self):
        """tuple: positional arguments with dependencies filled in and TaskDone slots removed."""
        return tuple(self._args)

    def kwargs_value(self):
        """dict: keyword arguments with dependencies filled in."""
        return self._kwargs

    # -- outcome -----------------------------------------------------------------------------------

    def set_finish_callback(self, fn):
        """Register ``fn(task, value, error)``, called once when the task ends."""
        self._on_finish = fn

    def set_result(self, value):
        """The call returned ``value``: store it and tell the caller."""
        self.status = TaskStatus.DONE
        if self._on_finish is not None:
            self._on_finish(self, value, None)

    def set_exception(self, exc):
        """The call raised ``exc`` (or could not run): tell the caller."""
        self.status = TaskStatus.FAILED
        self._error = exc
        if self._on_finish is not None:
            self._on_finish(self, None, exc)

    def set_done(self):
        """The call finished with no value."""
        self.set_result(None)

    def check_result(self):
        """Raise the task's exception if it failed.

        Returns
        -------
        bool
            ``True`` if the task finished successfully, ``False`` otherwise (still pending).

        Raises
        ------
        Exception
            The task's exception if it failed.
        """
        if self.status is TaskStatus.FAILED:
            raise self._error
        return self.status is TaskStatus.DONE

    def add_event(self, name, **data):
        """Attach a named event to the task: ``(time, 'event', name, data)`` in ``events``.

        Parameters
        ----------
        name : str
            Name of the event.
        **data
            Anything picklable to record with it. Time is in s since the epoch.
        """
        if self.events is None:
            self.events = []
        self.events.append((time.time(), 'event', name, data))

    def add_profile(self, profile, **data):
        """Attach a profiling record to the task: ``(time, 'profile', profile, data)`` in
        ``events`` (and in ``profile``).

        Parameters
        ----------
        profile : object
            The profile (a name, or a profiler's output).
        **data
            Anything picklable to record with it.
        """
        if self.events is None:
            self.events = []
        record = (time.time(), 'profile', profile, data)
        self.events.append(record)
        if self.profile is None:
            self.profile = []
        self.profile.append(record)

    def __repr__(self):
        return f'<Task {self.method} task={self.uid} from {self.sender_id} {self.status.value}>'
