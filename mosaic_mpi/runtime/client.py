"""The caller's side of the runtime: submitting calls and tracking what they became.

Every rank has a :class:`Client` (the head for ``main``, workers for actor-to-actor calls). User
threads submit through it; the progress thread reports completions and fetched values to it.
Futures are created on whatever event loop awaits and resolved there through the
:class:`LoopBridge`, so the client works with any loop and from plain threads.
"""

import asyncio
import itertools
import threading
import time
import warnings

from ..core.state import TaskState
from ..core.task import TaskProxy, TaskOutput, TaskDone, TaskStatus
from ..errors import RuntimeNotRunning, SerialisationError
from ..messages import make_id, id_run, Call, CreateTessera, Dependency, Drop, Fetch, Select
from ..serialisation import NO_ARGUMENTS, dumps, loads
from .failures import unpack_error

__all__ = ['Client', 'LoopBridge', 'Requests']

_FINISHED = (TaskStatus.DONE, TaskStatus.FAILED)
_DROP_BATCH = 1024      # freed results sent in one Drop at most
_DROP_AGE = 0.01        # s: longest a freed result waits for its Drop while the rank is busy


class LoopBridge:
    """Hands work from the progress thread to event loops, one wake-up per loop per cycle."""

    def __init__(self):
        self._pending = {}

    def post(self, loop, fn, *args):
        """Queue ``fn(*args)`` for ``loop`` (in a progress cycle)."""
        items = self._pending.get(loop)
        if items is None:
            self._pending[loop] = items = []
        items.append((fn, args))

    def resolve(self, loop, fn, *args):
        """Like :meth:`post`, for ``fn`` that only resolves futures (runs no user code).

        In a cycle run by ``loop``'s own thread it runs at once: the awaiting coroutine then
        resumes in the same loop iteration.
        """
        if asyncio._get_running_loop() is loop:
            _run_items(loop, ((fn, args),))
        else:
            self.post(loop, fn, *args)

    def flush(self):
        """Wake each loop that has work (in a progress cycle).

        A cycle run by a loop's own thread (see ``Transport.assist``) queues the work on it
        directly: no self-pipe write, and it runs in the same loop iteration.
        """
        pending, self._pending = self._pending, {}
        here = asyncio._get_running_loop()
        for loop, items in pending.items():
            try:
                if loop is here:
                    loop.call_soon(_run_items, loop, items)
                else:
                    loop.call_soon_threadsafe(_run_items, loop, items)
            except RuntimeError:       # the loop has been closed: nobody waits any more
                pass


def _run_items(loop, items):
    for fn, args in items:
        try:
            fn(*args)
        except Exception as exc:
            loop.call_exception_handler({'message': 'mosaic_mpi callback failed',
                                         'exception': exc})


class Requests:
    """Fetch request ids of this rank and who handles their answers."""

    def __init__(self, rank, first_id=1):
        self._rank = rank
        self._counter = itertools.count(first_id)
        self._handlers = {}

    def new(self, handler):
        """Register ``handler(value_record)``; returns the request id."""
        request_id = make_id(self._rank, next(self._counter))
        self._handlers[request_id] = handler
        return request_id

    def pop(self, request_id):
        """The handler of ``request_id`` (removed)."""
        return self._handlers.pop(request_id)


def _set_future(future, value, error):
    if future.done():
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


class Client:
    """Submits calls from this rank and tracks their outcome.

    Parameters
    ----------
    rank : int
        This rank.
    transport : Transport
        Where records go.
    bridge : LoopBridge
        How the progress thread reaches event loops.
    requests : Requests
        Fetch request registry shared with the worker side.
    placement : RoundRobin
        Where new tesserae go.
    oob_threshold : int
        Bytes from which buffers travel out of band.
    first_id : int
        Counter of the first id this client makes (runs started one after another in one process
        use disjoint ranges, so ids never repeat).
    """

    def __init__(self, rank, transport, bridge, requests, placement, oob_threshold, first_id=1):
        self.rank = rank
        self._transport = transport
        self._bridge = bridge
        self._requests = requests
        self.placement = placement
        self._threshold = oob_threshold
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._tasks = {}
        self._counter = itertools.count(first_id)
        self._run = id_run(make_id(rank, first_id))
        self.outstanding = 0
        self.closed = False
        self._drops = {}                # owner rank -> ids of freed results not yet dropped
        self._drops_since = 0.0         # when the oldest of them was freed

    # -- user threads --------------------------------------------------------------------------------

    def new_id(self):
        """A fresh task or tessera id."""
        return make_id(self.rank, next(self._counter))

    def worker_handle(self, rank):
        """The WorkerHandle of ``rank``."""
        for worker in self.placement.workers:
            if worker.rank == rank:
                return worker
        raise ValueError(f'no worker:{rank}')

    def _serialise_call(self, label, args, kwargs):
        if not args and not kwargs:
            return NO_ARGUMENTS, (), None
        deps, holds = [], []
        args = list(args)
        for slot, value in itertools.chain(enumerate(args), list(kwargs.items())):
            if isinstance(value, TaskProxy):
                proxy, selector = value, Select.WHOLE
            elif isinstance(value, (TaskOutput, TaskDone)):
                proxy, selector = value.proxy, value.selector
            else:
                continue
            state = proxy._st
            state.seen = True           # a failure reaches the user through the dependent call
            if state.client is None and not state.foreign:
                state.client = self
            deps.append(Dependency(slot, state.task_id, state.owner, selector,
                                   f'{state.label} (task {state.task_id})'))
            holds.append(proxy)
            if isinstance(slot, str):
                kwargs[slot] = None
            else:
                args[slot] = None
        kwargs = dict(kwargs)
        try:
            payload = dumps((tuple(args), kwargs), self._threshold)
        except SerialisationError:
            _name_unpicklable(label, args, kwargs, self._threshold)
            raise
        return payload, tuple(deps), holds

    def _register(self, state, holds, payload):
        state.client = self
        state.holds = holds or None
        state.nbytes = payload.nbytes
        with self._lock:
            self._tasks[state.task_id] = state
            self.outstanding += 1

    def submit_create(self, cls, name, args, kwargs, rank):
        """Build a tessera of ``cls`` on worker ``rank``.

        Returns
        -------
        tessera_id : int
        proxy : TaskProxy
            The construction task.

        Raises
        ------
        SerialisationError
            If the class or an argument cannot be pickled (naming the argument).
        """
        tessera_id = self.new_id()
        label = f'{name}.__init__'
        payload, deps, holds = self._serialise_call(label, args, kwargs)
        try:
            cls_payload = dumps(cls, self._threshold)
        except SerialisationError as error:
            payload.release()
            raise SerialisationError(f'the tessera class {name} cannot be pickled: {error}') \
                from error
        state = TaskState(self.new_id(), rank, tessera_id, '__init__', label)
        self._register(state, holds, payload)
        self._transport.send(rank, CreateTessera(state.task_id, tessera_id, self.rank, name,
                                                 (cls_payload, payload), deps))
        return tessera_id, TaskProxy(state)

    def submit_call(self, tessera_id, rank, name, op, method, args, kwargs):
        """Call ``method`` (or get/set an attribute) on a tessera; returns its TaskProxy at once.

        Raises
        ------
        SerialisationError
            If an argument cannot be pickled (the message names it).
        RuntimeNotRunning
            If the tessera belongs to an earlier run (its workers have stopped).
        """
        if id_run(tessera_id) != self._run:
            raise RuntimeNotRunning(f'{name} (tessera {tessera_id}) belongs to an earlier run of '
                                    f'the runtime, whose workers have stopped: create it again')
        label = f'{name}.{method}'
        payload, deps, holds = self._serialise_call(label, args, kwargs)
        state = TaskState(self.new_id(), rank, tessera_id, method, label)
        self._register(state, holds, payload)
        self._transport.send(rank, Call(state.task_id, tessera_id, self.rank, op, method, payload,
                                        deps))
        return TaskProxy(state)

    def add_callback(self, state, loop, fn, resolves=False):
        """Run ``fn(state)`` on ``loop`` when the task finishes (now, if it has).

        ``resolves``: ``fn`` only resolves futures (see :meth:`LoopBridge.resolve`).
        """
        if state.foreign:
            async def watch():
                try:
                    await self.fetch(state, Select.DONE)
                except Exception:
                    pass
                fn(state)
            loop.create_task(watch())
            return
        with self._lock:
            if state.status not in _FINISHED:
                if state.callbacks is None:
                    state.callbacks = []
                state.callbacks.append((loop, fn, resolves))
                return
        fn(state)

    def error_of(self, state):
        """The task's exception (a fresh object), or ``None`` if it has not failed."""
        if state.status is TaskStatus.FAILED:
            state.seen = True
            return state.error if isinstance(state.error, BaseException) \
                else unpack_error(state.error)
        return None

    async def wait(self, state):
        """Wait for the task; raise its exception if it failed."""
        if state.foreign:
            await self.fetch(state, Select.DONE)
            return
        if state.status not in _FINISHED:
            future = asyncio.get_running_loop().create_future()
            self.add_callback(state, future.get_loop(),
                              lambda _: future.done() or future.set_result(None), resolves=True)
            await future
        error = self.error_of(state)
        if error is not None:
            raise error

    async def fetch(self, state, selector):
        """The value ``selector`` picks from the task's result, fetched once and cached."""
        values = state.values
        if values is not None and selector in values:
            return values[selector]
        error = self.error_of(state)
        if error is not None:
            raise error
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if state.fetching is None:
                state.fetching = {}
            waiting = state.fetching.get(selector)
            if waiting is None:
                state.fetching[selector] = [(loop, future)]
            else:
                waiting.append((loop, future))
        if waiting is None:
            request_id = self._requests.new(lambda record: self._on_value(state, selector, record))
            self._transport.send(state.owner, Fetch(request_id, state.task_id, selector, self.rank))
        return await future

    def release(self, state):
        """A proxy of the task went away (any thread): free the result once it has finished."""
        if not state.foreign and not state.released:
            self._transport.call_soon(self._release, state)

    def escape(self, state):
        """A proxy of the task was pickled: its result must never be freed automatically."""
        state.escaped = True

    def mark_done(self, state, error):
        """Record an outcome reported by other means than a Completed record."""
        self._finish(state, error)
        self._bridge.flush()

    def drain(self, timeout=None):
        """Block until every task this client submitted has finished.

        Returns
        -------
        bool
            ``True`` if all finished within ``timeout`` seconds.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self.outstanding == 0, timeout)

    async def barrier(self):
        """Wait until every task submitted so far has finished (errors are not raised)."""
        with self._lock:
            states = [s for s in self._tasks.values() if s.status not in _FINISHED]
        for state in states:
            try:
                await self.wait(state)
            except Exception:
                pass

    # -- progress thread -----------------------------------------------------------------------------

    def on_completed(self, source, record):
        """A task of this client ended."""
        state = self._tasks.get(record.task_id)
        if state is not None:
            self._finish(state, record.error)

    def _finish(self, state, error):
        with self._lock:
            if state.status in _FINISHED:
                return
            state.status = TaskStatus.FAILED if error is not None else TaskStatus.DONE
            state.error = error
            callbacks, state.callbacks = state.callbacks or (), None
            holds, state.holds = state.holds, None
            self.outstanding -= 1
            if self.outstanding == 0:
                self._idle.notify_all()
        for loop, fn, resolves in callbacks:
            if resolves:
                self._bridge.resolve(loop, fn, state)
            else:
                self._bridge.post(loop, fn, state)
        if state.released:
            self._drop(state)
        del holds

    def _on_value(self, state, selector, record):
        with self._lock:
            waiters = state.fetching.pop(selector, []) if state.fetching else []
        by_loop = {}
        for loop, future in waiters:
            by_loop.setdefault(loop, []).append(future)
        for loop, futures in by_loop.items():
            self._bridge.resolve(loop, self._resolve, state, selector, record, futures)

    @staticmethod
    def _resolve(state, selector, record, futures):
        value = error = None
        try:
            if record.ok:
                value = loads(record.payload)
                if state.values is None:
                    state.values = {}
                state.values[selector] = value
            else:
                error = unpack_error(record.payload)
        except Exception as exc:
            error = SerialisationError(f'the result of {state.label} (task {state.task_id}) '
                                       f'arrived but cannot be unpickled here: '
                                       f'{type(exc).__name__}: {exc}')
            error.__cause__ = exc
        for future in futures:
            _set_future(future, value, error)

    def _release(self, state):
        state.released = True
        if state.status in _FINISHED:
            self._drop(state)

    def _drop(self, state):
        if state.status is TaskStatus.FAILED and not state.seen:
            error = self.error_of(state)
            message = (f'{state.label} (task {state.task_id}) failed and nobody awaited it: '
                       f'{type(error).__name__}: {error}')
            warnings.warn(message, RuntimeWarning)
        if self._tasks.pop(state.task_id, None) is None or state.escaped or self.closed:
            return
        # Freed results are batched: one Drop per owner when the rank idles (an idle hook of the
        # transport), after _DROP_AGE seconds, or once _DROP_BATCH ids are waiting.
        now = time.monotonic()
        ids = self._drops.get(state.owner)
        if ids is None:
            ids = self._drops[state.owner] = []
        if not self._drops_since:
            self._drops_since = now
        ids.append(state.task_id)
        if len(ids) >= _DROP_BATCH or now - self._drops_since > _DROP_AGE:
            self.flush_drops()

    def flush_drops(self):
        """Send the batched Drops (in a progress cycle; cheap when there are none)."""
        if not self._drops:
            return
        drops, self._drops = self._drops, {}
        self._drops_since = 0.0
        if self.closed:
            return
        for owner, ids in drops.items():
            self._transport.send(owner, Drop(tuple(ids), ()))


def _name_unpicklable(label, args, kwargs, threshold):
    """Raise a SerialisationError naming the first argument that cannot be pickled."""
    named = [(f'positional argument {i}', v) for i, v in enumerate(args)]
    named += [(f'keyword argument {k!r}', v) for k, v in kwargs.items()]
    for name, value in named:
        try:
            dumps(value, threshold, lock=False)
        except SerialisationError as error:
            raise SerialisationError(f'{name} of {label}() cannot be pickled: {error}') from error
