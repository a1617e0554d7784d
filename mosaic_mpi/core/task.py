"""Tasks: the caller's handles on a remote call, and the worker's record of it.

On the caller's side a call ``p.method(...)`` returns a :class:`TaskProxy` at once. Its
:attr:`TaskProxy.outputs` (a :class:`TaskOutputGenerator`) hands out :class:`TaskOutput` references
to single outputs and :attr:`TaskProxy.done` a :class:`TaskDone` reference to completion. Passing
any of these as a top-level argument of another call makes that call wait for it; the value then
travels worker to worker. None of them moves data or sends anything by itself.

On the worker, every call is a :class:`Task`.

Proxies only hold a *client* (the calling rank's bookkeeping, :mod:`mosaic_mpi.runtime.client`) and
the task's state record; they never import the runtime.
"""

import asyncio
import enum
import time

from .. import context
from ..messages import Select

__all__ = ['TaskProxy', 'TaskOutputGenerator', 'TaskOutput', 'TaskDone', 'Task', 'TaskStatus']


class TaskStatus(enum.Enum):
    """Where a task is in its life."""
    PENDING = 'pending'   #: submitted, waiting for its arguments or its turn
    RUNNING = 'running'   #: executing on its worker
    DONE = 'done'         #: finished, result stored on its worker
    FAILED = 'failed'     #: raised, or a dependency failed


def _client_of(state):
    if state.client is None:
        state.client = context.require().client
    return state.client


class TaskProxy:
    """Handle on a call made on a remote tessera.

    Returned at once by ``proxy.method(...)``; the call has already been submitted. ``await t``
    waits for the call to finish and returns ``t``; ``await t.result()`` fetches the value.

    Raises
    ------
    Exception
        ``await t``, ``await t.result()`` and :meth:`wait` raise the exception the remote method
        raised (same type and message, remote traceback as ``__cause__``), or
        :class:`~mosaic_mpi.errors.DependencyError` if a task it depended on failed.
    """

    type = 'task_proxy'

    __slots__ = ('_st', '__weakref__')

    def __init__(self, state):
        self._st = state

    # -- identity ----------------------------------------------------------------------------------

    @property
    def uid(self):
        """int: the task's id, unique across ranks."""
        return self._st.task_id

    @property
    def method(self):
        """str: name of the method called."""
        return self._st.method

    @property
    def tessera_id(self):
        """int: id of the tessera the call runs on."""
        return self._st.tessera_id

    @property
    def runtime_id(self):
        """str: uid of the worker running the task, e.g. ``'worker:1'``."""
        return f'worker:{self._st.owner}'

    @property
    def remote_runtime(self):
        """WorkerHandle: the worker running the task."""
        return _client_of(self._st).worker_handle(self._st.owner)

    @property
    def collectable(self):
        """bool: whether the result will be freed on its worker once no proxy refers to it.

        A proxy pickled inside a container (sent elsewhere by reference) makes its task
        uncollectable for the rest of the run.
        """
        return not self._st.escaped

    @property
    def state(self):
        """TaskStatus: as last reported to this rank."""
        return self._st.status

    # -- waiting ---------------------------------------------------------------------------------

    def __await__(self):
        return self.wait().__await__()

    async def wait(self):
        """Wait for the task to finish.

        Returns
        -------
        TaskProxy
            ``self``.

        Raises
        ------
        Exception
            The remote exception if the task failed.
        """
        await _client_of(self._st).wait(self._st)
        return self

    async def result(self):
        """Fetch the task's return value (once; later calls return the cached value).

        Returns
        -------
        object
            The method's value: a single value as itself, a 1-tuple unwrapped, a longer tuple as a
            tuple, a dict as a dict, ``None`` as ``None``.

        Raises
        ------
        Exception
            The remote exception if the task failed.
        """
        return await _client_of(self._st).fetch(self._st, Select.WHOLE)

    @property
    def done_future(self):
        """asyncio.Future: resolves to ``self`` when the task finishes (or to its exception).

        Created on the running event loop at first access.
        """
        state = self._st
        if state.done_future is None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            state.done_future = future

            def finish(_):
                if future.done():
                    return
                error = state.client.error_of(state)
                if error is None:
                    future.set_result(self)
                else:
                    future.set_exception(error)
            _client_of(state).add_callback(state, loop, finish)
        return state.done_future

    @property
    def init_future(self):
        """asyncio.Future: resolves (to ``self``) once the call has been handed to the transport.

        Calls are submitted eagerly, so it is already resolved when the proxy is returned.
        """
        future = asyncio.get_running_loop().create_future()
        future.set_result(self)
        return future

    def add_done_callback(self, fn):
        """Call ``fn(self)`` on the current event loop when the task finishes (well or not).

        Parameters
        ----------
        fn : callable
            Takes the :class:`TaskProxy`.
        """
        _client_of(self._st).add_callback(self._st, asyncio.get_running_loop(),
                                          lambda _: fn(self))

    def check_result(self):
        """Whether the task finished, raising its exception if it failed.

        Returns
        -------
        bool
            ``True`` if it finished successfully, ``False`` if it has not finished yet.

        Raises
        ------
        Exception
            The remote exception if the task failed.
        """
        error = _client_of(self._st).error_of(self._st)
        if error is not None:
            raise error
        return self._st.status is TaskStatus.DONE

    def size(self, pending=False):
        """Bytes of the call's serialised arguments (in band and out of band).

        Parameters
        ----------
        pending : bool
            If true, count only while the task has not finished (0 after).

        Returns
        -------
        int
            Size in bytes.
        """
        if pending and self._st.status in (TaskStatus.DONE, TaskStatus.FAILED):
            return 0
        return self._st.nbytes

    # -- references ------------------------------------------------------------------------------

    @property
    def outputs(self):
        """TaskOutputGenerator: ``t.outputs[i]`` / ``t.outputs['key']`` reference single outputs."""
        return TaskOutputGenerator(self)

    @property
    def done(self):
        """TaskDone: a reference to the task's completion (carries no value)."""
        return TaskDone(self)

    # -- used by the runtime ---------------------------------------------------------------------

    def set_result(self, result=None):
        """Mark the task finished successfully (used by the runtime)."""
        _client_of(self._st).mark_done(self._st, None)

    def set_exception(self, exc):
        """Mark the task failed with ``exc`` (used by the runtime)."""
        _client_of(self._st).mark_done(self._st, exc)

    def set_done(self):
        """Mark the task finished successfully (used by the runtime)."""
        self.set_result(None)

    def deregister_runtime(self):
        """Give up this proxy's hold on the result now: it is freed once the task finishes."""
        _client_of(self._st).release(self._st)

    def __del__(self):
        try:
            client = self._st.client
            if client is not None:
                client.release(self._st)
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    def __reduce__(self):
        _client_of(self._st).escape(self._st)
        return _rebuild_task_proxy, _ref_args(self._st)

    def __repr__(self):
        return (f'<TaskProxy {self._st.label} task={self.uid} on worker:{self._st.owner} '
                f'{self._st.status.value}>')


def _ref_args(state):
    return (state.task_id, state.owner, state.tessera_id, state.method)


def _rebuild_task_proxy(task_id, owner, tessera_id, method):
    # Binding to this rank's runtime happens on first use, not here: unpickling sends nothing.
    from ..runtime.client import foreign_state
    return TaskProxy(foreign_state(task_id, owner, tessera_id, method))


class TaskOutputGenerator:
    """Hands out references to single outputs of a task.

    ``gen[i]`` is output ``i`` of a tuple result (for a non-tuple result, index 0 is the whole
    value); ``gen['key']`` an item of a dict result; ``gen.done`` the completion.
    """

    __slots__ = ('_proxy',)

    def __init__(self, proxy):
        self._proxy = proxy

    def __getitem__(self, key):
        if not isinstance(key, (int, str)) or isinstance(key, bool):
            raise TypeError(f'task outputs are indexed by int or str, not {type(key).__name__}')
        return TaskOutput(key, self._proxy)

    def __iter__(self):
        raise TypeError('the number of outputs of a task is not known before it runs: index '
                        'them (t.outputs[0], t.outputs[1], ...) instead of unpacking')

    @property
    def done(self):
        """TaskDone: reference to the task's completion."""
        return TaskDone(self._proxy)


class TaskOutput:
    """Reference to one output of a task.

    Parameters
    ----------
    key : int or str
        Tuple index, or dict key, of the output.
    proxy : TaskProxy
        The task.
    """

    __slots__ = ('key', 'proxy')

    def __init__(self, key, proxy):
        self.key = key
        self.proxy = proxy

    @property
    def selector(self):
        """The selector sent with fetches (the key)."""
        return self.key

    async def result(self):
        """Fetch this output's value.

        Returns
        -------
        object
            ``result[key]`` for tuple and dict results; the whole value for index 0 of a
            non-tuple result.

        Raises
        ------
        IndexError, KeyError
            If the result has no such output.
        Exception
            The remote exception if the task failed.
        """
        return await _client_of(self.proxy._st).fetch(self.proxy._st, self.key)

    def __await__(self):
        return self.result().__await__()

    def size(self, pending=False):
        """Bytes of the task's serialised arguments (see :meth:`TaskProxy.size`)."""
        return self.proxy.size(pending)

    def __repr__(self):
        return f'<TaskOutput [{self.key!r}] of {self.proxy!r}>'


class TaskDone:
    """Reference to a task's completion: as an argument it makes a call wait, then it is removed.

    Parameters
    ----------
    proxy : TaskProxy
        The task.
    """

    __slots__ = ('proxy',)

    def __init__(self, proxy):
        self.proxy = proxy

    selector = Select.DONE

    async def result(self):
        """Wait for the task to finish.

        Returns
        -------
        None

        Raises
        ------
        Exception
            The remote exception if the task failed.
        """
        await self.proxy.wait()

    def __await__(self):
        return self.result().__await__()

    def size(self, pending=False):
        """Bytes of the task's serialised arguments (see :meth:`TaskProxy.size`)."""
        return self.proxy.size(pending)

    def __repr__(self):
        return f'<TaskDone of {self.proxy!r}>'


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
        self.is_remote = sender != local_rank
        self.status = TaskStatus.PENDING
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

    @property
    def sender_id(self):
        """str: uid of the caller: ``'head'`` or ``'worker:N'``."""
        return 'head' if self.sender == 0 else f'worker:{self.sender}'

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
        """Record a timeline event ``(wall time in s since the epoch, name, data)`` in ``events``."""
        if self.events is None:
            self.events = []
        self.events.append((time.time(), name, data))

    def add_profile(self, name, **data):
        """Record a profiling sample ``(wall time in s since the epoch, name, data)`` in ``profile``."""
        if self.profile is None:
            self.profile = []
        self.profile.append((time.time(), name, data))

    def __repr__(self):
        return f'<Task {self.method} task={self.uid} from {self.sender_id} {self.status.value}>'
