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
import time

from ..messages import Select
from .state import foreign_state
from .references import (TaskDone, TaskOutput, TaskOutputGenerator, TaskRemote,
                         bound_client, client_of as _client_of)
from .status import TaskStatus
from .worker_task import Task, current_task

__all__ = ['TaskProxy', 'TaskOutputGenerator', 'TaskOutput', 'TaskDone', 'TaskRemote', 'Task',
           'TaskStatus', 'current_task']

_FINISHED = (TaskStatus.DONE, TaskStatus.FAILED)


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

        Proxies that travel to other ranks (inside containers, in results, held by tesserae)
        are counted there too: the result is freed once none is left anywhere. ``False`` only
        for a proxy of another run, or one rebuilt where no runtime runs.
        """
        state = self._st
        return not state.foreign or state.held

    @property
    def state(self):
        """TaskStatus: as last reported to this rank."""
        return self._st.status

    # -- waiting ---------------------------------------------------------------------------------

    def __await__(self):
        return self._wait().__await__()

    async def _wait(self):
        await _client_of(self._st).wait(self._st)
        return self

    async def init(self):
        """Wait until the call has reached its worker (it may not have started yet).

        Returns
        -------
        TaskProxy
            ``self``.
        """
        await _client_of(self._st).registered(self._st)
        return self

    def wait(self):
        """Whether the task has finished, without waiting (as Mosaic's ``wait``).

        Use ``await t`` to wait.

        Returns
        -------
        bool
            ``True`` if it finished successfully.

        Raises
        ------
        asyncio.InvalidStateError
            If it has not finished yet.
        Exception
            The remote exception if the task failed.
        """
        if self._st.status not in _FINISHED:
            raise asyncio.InvalidStateError(f'{self!r} has not finished: `await` it to wait')
        return self.check_result()

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
        """asyncio.Future: resolves to ``self`` once the call has reached its worker.

        The same as :meth:`init`, as a future made on the running event loop at first access.
        """
        state = self._st
        if state.init_future is None:
            state.init_future = asyncio.ensure_future(self.init())
        return state.init_future

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

    async def size(self, pending=False):
        """Size of the task's result in bytes, as it would travel (pickled, buffers included).

        Waits for the task to finish; asks its worker (the value itself is not moved).

        Parameters
        ----------
        pending : bool
            If true, 0 when the result has already been fetched to this rank.

        Returns
        -------
        int
            Size in bytes.

        Raises
        ------
        Exception
            The remote exception if the task failed.
        """
        return await _client_of(self._st).result_size(self._st, Select.WHOLE, pending)

    @property
    def events(self):
        """list of tuple: ``(time, kind, name, data)`` records added here with :meth:`add_event`
        (kind ``'event'``) and :meth:`add_profile` (kind ``'profile'``); time in s since the epoch."""
        return list(self._st.events or ())

    def add_event(self, name, **data):
        """Attach a named event to the task (appears in its timeline).

        Parameters
        ----------
        name : str
            Name of the event.
        **data
            Anything picklable to record with it.
        """
        self._record('event', name, data)

    def add_profile(self, profile, **data):
        """Attach a profiling record to the task (appears in its timeline).

        Parameters
        ----------
        profile : object
            The profile (a name, or a profiler's output).
        **data
            Anything picklable to record with it.
        """
        self._record('profile', profile, data)

    def _record(self, kind, name, data):
        state = self._st
        if state.events is None:
            state.events = []
        now = time.time()
        state.events.append((now, kind, name, data))
        timeline = _client_of(state).timeline
        if timeline is not None:
            timeline.proxy_events.append((state.task_id, now, kind, str(name), data))

    @staticmethod
    def remote_cls():
        """type: the class of this proxy's remote side, :class:`Task`."""
        return Task

    # -- references ------------------------------------------------------------------------------

    @property
    def outputs(self):
        """TaskOutputGenerator: ``t.outputs[i]`` / ``t.outputs['key']`` reference single outputs."""
        return TaskOutputGenerator(self)

    @property
    def done(self):
        """TaskDone: a reference to the task's completion (carries no value)."""
        return TaskDone(self)

    @property
    def remote(self):
        """TaskRemote: ``t.remote.name(*args)`` calls ``name`` on the result where it is stored."""
        return TaskRemote(self)

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

    def deregister_runtime(self, uid=None):
        """Give up this proxy's hold on the result now: it is freed once the task finishes.

        Parameters
        ----------
        uid : str, optional
            Accepted for Mosaic compatibility (the runtime whose hold is given up: this one).
        """
        _client_of(self._st).release(self._st)

    def __del__(self):
        try:
            client = self._st.client
            if client is not None:
                client.release(self._st)
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    def __reduce__(self):
        # A reference in flight: counted until the receiving rank has registered it.
        state = self._st
        lender = _client_of(state).escape(state)
        return _rebuild_task_proxy, (state.task_id, state.owner, state.tessera_id, state.method,
                                     lender)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        # A handle, not data: copies of a value holding it (runtime/ownership.py) share it.
        return self

    def __repr__(self):
        return (f'<TaskProxy {self._st.label} task={self.uid} on worker:{self._st.owner} '
                f'{self._st.status.value}>')


def _rebuild_task_proxy(task_id, owner, tessera_id, method, lender=-1):
    # Registers with this rank's runtime (if one runs) as a borrow; the update to the owner
    # leaves later, batched: unpickling itself sends nothing.
    state = foreign_state(task_id, owner, tessera_id, method)
    client = bound_client()
    if client is not None:
        client.adopt(state, lender)
    return TaskProxy(state)
