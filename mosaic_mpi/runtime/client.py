"""The caller's side of the runtime: submitting calls and tracking what they became.

Every rank has a :class:`Client` (the head for ``main``, workers for actor-to-actor calls). User
threads submit through it; the progress thread reports completions and fetched values to it.
Futures are created on whatever event loop awaits and resolved there through the
:class:`~.bridge.LoopBridge`, so the client works with any loop and from plain threads.
"""

import asyncio
import itertools
import threading
import time
import warnings

from ..core.state import ArrayCall, TaskState
from ..core.references import recording, uncounted
from ..core.task import TaskProxy, TaskOutput, TaskDone, TaskStatus
from ..core.warehouse_object import WarehouseObject
from ..core.worker_task import current_task
from ..errors import DeadlockError, RuntimeDisconnectedError, RuntimeNotRunning, SerialisationError
from ..messages import (make_id, anonymous_tessera_id, id_run, Ask, Call, CallArray, CreateTessera,
                        Dependency, Drop, Fetch, Op, Query, Select)
from ..serialisation import NO_ARGUMENTS, dumps, loads
from .failures import pack_error, unpack_error
from .bridge import settle
from .gcpause import QueuedCalls
from .refcounts import RefCounts, TASK, TESSERA

__all__ = ['Client']

_FINISHED = (TaskStatus.DONE, TaskStatus.FAILED)
_DROP_BATCH = 1024      # freed results sent in one Drop at most
_DROP_AGE = 0.01        # s: longest a freed result waits for its Drop while the rank is busy


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
    max_pending : int
        Calls of this client in flight on one worker beyond which a new call blocks until one
        finishes (back-pressure).
    first_id : int
        Counter of the first id this client makes (runs started one after another in one process
        use disjoint ranges, so ids never repeat).
    """

    def __init__(self, rank, transport, bridge, requests, placement, oob_threshold,
                 max_pending=100_000, first_id=1):
        self.rank = rank
        self._transport = transport
        self._bridge = bridge
        self._requests = requests
        self.placement = placement
        self._threshold = oob_threshold
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._draining = 0              # threads waiting in drain()
        self._tasks = {}
        self._members = {}              # task id -> (ArrayCall, index): members with no TaskState
        self._groups = set()            # ArrayCalls with members not finished
        self._counter = itertools.count(first_id)
        self._run = id_run(make_id(rank, first_id))
        self.outstanding = 0
        self.submitted = 0              # tasks submitted by this rank so far (barrier waves)
        self.queued_calls = QueuedCalls()   # the GC skips long queues of calls (gcpause)
        self.timeline = None            # a Timeline when tracing
        self.cycles = None              # a CycleDetector on workers (methods waiting on calls)
        self.max_pending = max_pending  # calls in flight per worker before submitting blocks
        self.throttled = 0              # submissions that had to wait for room (S32)
        self._pending = {}              # owner rank -> calls of this client not finished
        self.lost = set()               # ranks of workers that were lost
        placement.lost = self.lost      # new tesserae go on the others
        self._room = threading.Condition(self._lock)
        self._closed = False
        self._drops = {}                # owner rank -> (freed task ids, freed tessera ids)
        self._drops_since = 0.0         # when the oldest of them was freed
        # Proxies that travel to other ranks are counted there (owner/borrower, borrowers.py).
        self.refs = RefCounts(rank, self._run, transport, self._on_free)
        self._collective_calls = []     # the member states of each call on a collective array
        self._collective_prune = 64     # pruned of finished calls when it reaches this length

    @property
    def closed(self):
        """bool: the run is over (nothing more is sent, reference counting has stopped)."""
        return self._closed

    @closed.setter
    def closed(self, value):
        self._closed = value
        if value:
            self.refs.close()

    # -- user threads --------------------------------------------------------------------------------

    def new_id(self):
        """A fresh task or tessera id."""
        return make_id(self.rank, next(self._counter))

    def in_flight(self, rank):
        """int: calls of this client submitted to ``rank`` and not finished yet."""
        return self._pending.get(rank, 0)

    def worker_handle(self, rank):
        """The WorkerHandle of ``rank``."""
        for worker in self.placement.workers:
            if worker.rank == rank:
                return worker
        raise ValueError(f'no worker:{rank}')

    def handle_of(self, rank):
        """The handle of ``rank``: the head's is ``WorkerHandle('head', 0, host)``."""
        if rank == 0:
            return self.placement.head
        return self.worker_handle(rank)

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
            elif isinstance(value, WarehouseObject):    # arrives as its value (no hold needed)
                deps.append(Dependency(slot, value.object_id, value.owner, Select.OBJECT,
                                       value.uid))
                if isinstance(slot, str):
                    kwargs[slot] = None
                else:
                    args[slot] = None
                continue
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
        owner = state.owner
        with self._lock:
            self._tasks[state.task_id] = state
            self.outstanding += 1
            self.submitted += 1
            self.queued_calls.submitted(self.submitted, self.outstanding)
            pending = self._pending[owner] = self._pending.get(owner, 0) + 1
            if pending > self.max_pending and self.rank == 0:
                # Back-pressure (S32): the head waits for the worker to catch up. Completions
                # arrive on the progress thread, so this thread may block. Workers never block:
                # the calls their own tesserae wait for may need this very thread.
                self.throttled += 1
                self._room.wait_for(lambda: self._pending[owner] <= self.max_pending
                                    or self.closed)
        if self.timeline is not None:
            self.timeline.submit(state.task_id)

    def submit_create(self, cls, name, args, kwargs, rank, before_send=None):
        """Build a tessera of ``cls`` on worker ``rank``.

        ``before_send()``, if given, runs once the call has been serialised, just before its
        record is sent (a collective array's member sends its JoinGroup there, so that nothing
        is sent for a member whose arguments cannot be pickled).

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
        if rank in self.lost:
            raise RuntimeDisconnectedError(f'{label}: worker:{rank} was lost')
        payload, deps, holds = self._serialise_call(label, args, kwargs)
        try:
            cls_payload = dumps(cls, self._threshold)
        except SerialisationError as error:
            payload.release()
            raise SerialisationError(f'the tessera class {name} cannot be pickled: {error}') \
                from error
        state = TaskState(self.new_id(), rank, tessera_id, '__init__', label)
        self._register(state, holds, payload)
        if before_send is not None:
            before_send()
        self._transport.send(rank, CreateTessera(state.task_id, tessera_id, self.rank, name,
                                                 (cls_payload, payload), deps))
        return tessera_id, TaskProxy(state)

    def submit_call(self, tessera_id, rank, name, op, method, args, kwargs, retries=-1):
        """Call ``method`` (or get/set an attribute) on a tessera; returns its TaskProxy at once.

        ``retries``: runs again on failure (``max_retries=``), -1 for the tessera's default.

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
        if rank in self.lost:
            raise RuntimeDisconnectedError(f'{label}: worker:{rank} was lost, its tesserae are '
                                           f'gone')
        payload, deps, holds = self._serialise_call(label, args, kwargs)
        state = TaskState(self.new_id(), rank, tessera_id, method, label)
        if tessera_id >> 40 != self.rank and tessera_id != anonymous_tessera_id(rank, self._run):
            # A borrowed tessera outlives the calls made on it from here: its owner's Drop
            # could otherwise overtake a call still on its way to the worker.
            self.refs.pinned(tessera_id, TESSERA, rank)
            state.pin = tessera_id
        self._register(state, holds, payload)
        self._transport.send(rank, Call(state.task_id, tessera_id, self.rank, op, method, payload,
                                        deps, retries))
        return TaskProxy(state)

    def submit_array_call(self, members, name, op, method, args, kwargs, retries=-1):
        """Call ``method`` on every member of an array; one TaskProxy per member, in order.

        The same as one :meth:`submit_call` per member, cheaper: the arguments are pickled once,
        the members' tasks are registered in one go, and each worker gets one
        :class:`~mosaic_mpi.messages.CallArray` for all its members (it runs them as separate
        calls, in member order, each on its own copy of the arguments).

        Parameters
        ----------
        members : list of (int, int)
            ``(tessera_id, rank)`` of each member.
        name : str
            The class name (for labels).
        op, method, args, kwargs, retries
            As for :meth:`submit_call`.

        Returns
        -------
        list of TaskProxy

        Raises
        ------
        SerialisationError
            If an argument cannot be pickled (the message names it).
        RuntimeNotRunning
            If the array belongs to an earlier run.
        RuntimeDisconnectedError
            If a member's worker was lost (nothing is submitted then).
        """
        label = f'{name}.{method}'
        for tessera_id, rank in members:
            if id_run(tessera_id) != self._run:
                raise RuntimeNotRunning(f'{name} (tessera {tessera_id}) belongs to an earlier '
                                        f'run of the runtime, whose workers have stopped: '
                                        f'create it again')
            if rank in self.lost:
                raise RuntimeDisconnectedError(f'{label}: worker:{rank} was lost, its tesserae '
                                               f'are gone')
        with recording() as tokens:
            payload, deps, holds = self._serialise_call(label, args, kwargs)
        for _ in range(len(members) - 1):
            # Pickled once, unpickled once per member: one reference in flight per member.
            for token in tokens:
                self.refs.pickled(*token)
        new_id = self.new_id
        group = ArrayCall(tuple(new_id() for _ in members), tuple(members), method, label)
        group.client = self
        group.holds = holds or None     # kept until every member has finished
        group.nbytes = payload.nbytes
        by_rank = {}
        for index, (tessera_id, rank) in enumerate(members):
            if tessera_id >> 40 != self.rank:
                self.refs.pinned(tessera_id, TESSERA, rank)     # as in submit_call
                if group.pins is None:
                    group.pins = {}
                group.pins[index] = tessera_id
            indices = by_rank.get(rank)
            if indices is None:
                indices = by_rank[rank] = []
            indices.append(index)
        self._register_group(group, by_rank)
        task_ids = group.task_ids
        first = True
        for rank, indices in by_rank.items():
            self._transport.send(rank, CallArray(
                tuple(task_ids[i] for i in indices), tuple(members[i][0] for i in indices),
                self.rank, op, method, payload if first else payload.share(), deps, retries))
            first = False
        return group

    def _register_group(self, group, by_rank):
        # _register for the members of one array call, under one lock.
        count = len(group.task_ids)
        with self._lock:
            if self.rank == 0 and any(self._pending.get(o, 0) > self.max_pending
                                      for o in by_rank):
                # Back-pressure (S32), as in _register: wait for room before the whole call
                # (which may then go past the limit by its own members, never deadlock on them).
                self.throttled += 1
                self._room.wait_for(lambda: all(self._pending.get(o, 0) <= self.max_pending
                                                for o in by_rank) or self.closed)
            self._members.update(zip(group.task_ids, zip(itertools.repeat(group), range(count))))
            self._groups.add(group)
            self.outstanding += count
            self.submitted += count
            self.queued_calls.submitted(self.submitted, self.outstanding)
            pending = self._pending
            for owner, indices in by_rank.items():
                pending[owner] = pending.get(owner, 0) + len(indices)
        if self.timeline is not None:
            for task_id in group.task_ids:
                self.timeline.submit(task_id)

    def member_proxy(self, group, index, proxies):
        """The TaskProxy of member ``index`` of an array call, made on first use (any thread).

        ``proxies`` is the TaskArray's list of the proxies made so far (``None`` where none
        is): one proxy per member, even when threads ask at once.

        Returns
        -------
        TaskProxy
            Its TaskState is registered like any task of this client from then on, with the
            member's status so far.
        """
        with self._lock:
            proxy = proxies[index]
            if proxy is None:
                proxy = proxies[index] = TaskProxy(self._member_state(group, index))
            return proxy

    def _member_state(self, group, index):
        # (lock held) Member ``index``'s TaskState. The progress thread reads the tables without
        # the lock (on_completed): the state is in ``group.states`` and ``_tasks`` before it
        # leaves ``_members``, so a completion always finds one of the two.
        states = group.states
        if states is None:
            states = group.states = {}
        state = states.get(index)
        if state is not None:
            return state
        tessera_id, rank = group.members[index]
        task_id = group.task_ids[index]
        state = TaskState(task_id, rank, tessera_id, group.method, group.label, self)
        state.nbytes = group.nbytes
        state.group = group
        state.index = index
        status = group.status[index]
        if status == ArrayCall.PENDING:
            if group.pins is not None:
                state.pin = group.pins.pop(index, 0)
        else:
            state.status = TaskStatus.DONE if status == ArrayCall.DONE else TaskStatus.FAILED
            state.error = group.errors.get(index) if group.errors else None
        states[index] = state
        self._tasks[task_id] = state        # (its proxy frees it, as any task's)
        if status == ArrayCall.PENDING:
            self._members.pop(task_id, None)
        return state

    async def wait_group(self, group, on_failure=True):
        """Wait until every member of an array call has finished (errors are not raised).

        With ``on_failure``, also return as soon as one member has failed.
        """
        if group.remaining == 0 or (on_failure and group.failures):
            return
        if self.closed or id_run(group.task_ids[0]) != self._run:
            raise RuntimeNotRunning(f'{group.label} (an array call, tasks {group.task_ids[0]}...) '
                                    f'belongs to an earlier run of the runtime, whose workers '
                                    f'have stopped: its results are gone')
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if group.remaining == 0 or (on_failure and group.failures):
                return
            if group.waiters is None:
                group.waiters = []
            group.waiters.append((loop, lambda _: future.done() or future.set_result(None),
                                  on_failure))
        if self._bridge.about_to_wait(loop):
            self._transport.flush_now()     # the call queued just before goes out now
        await future

    def release_group(self, group):
        """The TaskArray of an array call went away (any thread): its members that have no
        TaskState are freed once they finish (the others follow their own proxies)."""
        if not self.closed:
            self._transport.call_soon(self._release_group, group)

    def _release_group(self, group):
        with self._lock:
            group.released = True
            states = group.states or {}
            ended = [i for i, status in enumerate(group.status)
                     if status != ArrayCall.PENDING and i not in states]
        for index in ended:
            self._drop_member(group, index)

    def submit_on_result(self, proxy, name, args, kwargs):
        """Run ``name(*args, **kwargs)`` on the task's result where it is stored (``t.remote``).

        The call runs on the owner's anonymous tessera (one at a time per worker, as Mosaic's
        ``tess-anon``), with the result as its first argument: the value does not move.

        Returns
        -------
        TaskProxy
            The new task; its value is what the method returned (awaited if a coroutine).
        """
        owner = proxy._st.owner
        return self.submit_call(anonymous_tessera_id(owner, self._run), owner, 'result', Op.CALL,
                                'apply',
                                (proxy, name) + tuple(args), kwargs)

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

    def _check_self_wait(self, state):
        """Raise if the running method awaits a call queued behind it on its own tessera (S31)."""
        task = current_task()
        if (task is not None and task.tessera_id == state.tessera_id
                and task.uid != state.task_id and state.status not in _FINISHED):
            raise DeadlockError(
                f'{task.method} (task {task.uid}) awaits {state.label} (task {state.task_id}), '
                f'which is queued behind it on the same tessera ({state.tessera_id}): it would '
                f'wait forever (calls on one tessera run one at a time). Cycle: '
                f'{task.method} -> {state.method} -> {task.method}')

    def _check_current(self, state):
        """Raise if ``state``'s task belongs to a runtime that has stopped (nothing can answer)."""
        if self.closed or id_run(state.task_id) != self._run:
            raise RuntimeNotRunning(f'{state.label} (task {state.task_id}) belongs to an earlier '
                                    f'run of the runtime, whose workers have stopped: its result '
                                    f'is gone')

    async def wait(self, state):
        """Wait for the task; raise its exception if it failed."""
        if state.status not in _FINISHED:
            self._check_current(state)
        self._check_self_wait(state)
        if state.foreign:
            await self.fetch(state, Select.DONE)
            return
        if state.status not in _FINISHED:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self.add_callback(state, loop,
                              lambda _: future.done() or future.set_result(None), resolves=True)
            if self._bridge.about_to_wait(loop):
                self._transport.flush_now()     # a call queued just before goes out now
            await self._watched(state, future)
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
        self._check_current(state)
        if state.owner in self.lost:
            raise RuntimeDisconnectedError(f'{state.label} (task {state.task_id}): its result '
                                           f'was on worker:{state.owner}, which was lost')
        self._check_self_wait(state)
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
            request_id = self._requests.new(lambda record: self._on_value(state, selector, record),
                                            state.owner)
            self._transport.send(state.owner, Fetch(request_id, state.task_id, selector, self.rank))
            if self._bridge.about_to_wait(loop):
                self._transport.flush_now()     # the call and its fetch leave now, together
        return await self._watched(state, future)

    async def _watched(self, state, future):
        """Await ``future`` (the task of ``state``); from inside a method, watched for cycles."""
        detector = self.cycles
        task = current_task() if detector is not None else None
        if task is None:
            return await future
        detector.waiting(task, state, future)
        try:
            return await future
        finally:
            detector.done(task)

    async def ask(self, rank, kind, task_id=0, selector=Select.WHOLE):
        """Send a :class:`~mosaic_mpi.messages.Query` to ``rank`` and return its answer.

        Parameters
        ----------
        rank : int
            The rank to ask (a task's owner, or any rank for ``Ask.BARRIER``).
        kind : Ask
            The question.
        task_id : int
            The task it is about (0 for ``Ask.BARRIER``).
        selector : Select, int or str
            Part of the result (``Ask.SIZE``).

        Returns
        -------
        object
            The answer (``None`` for ``Ask.INIT``, an int for the others).

        Raises
        ------
        Exception
            The error the rank answered with (the task failed, or has no such output).
        """
        if rank in self.lost:
            raise RuntimeDisconnectedError(f'worker:{rank} was lost: it cannot answer')
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        request_id = self._requests.new(
            lambda record: self._bridge.resolve(loop, _answer, future, record), rank)
        self._transport.send(rank, Query(request_id, task_id, kind, selector, self.rank))
        return await future

    def ask_blocking(self, rank, kind, timeout=30.0):
        """:meth:`ask` from synchronous code (no event loop; the progress thread answers).

        Raises
        ------
        TimeoutError
            If no answer came within ``timeout`` seconds.
        """
        done = threading.Event()
        answer = []
        request_id = self._requests.new(lambda record: (answer.append(record), done.set()), rank)
        self._transport.send(rank, Query(request_id, 0, kind, Select.WHOLE, self.rank))
        if not done.wait(timeout):
            raise TimeoutError(f'rank {rank} did not answer {kind.name} within {timeout:g} s')
        record = answer[0]
        if not record.ok:
            raise unpack_error(record.payload)
        return loads(record.payload)

    async def registered(self, state):
        """Wait until the task has reached its worker (returns at once if it is known to)."""
        if state.registered or state.status in _FINISHED:
            return
        await self.ask(state.owner, Ask.INIT, state.task_id)
        state.registered = True

    async def result_size(self, state, selector, pending=False):
        """Bytes of (part of) the task's result, serialised, once it has finished.

        With ``pending``, 0 if that part has already been fetched to this rank.
        """
        await self.wait(state)
        if selector is Select.DONE:
            return 0
        if pending and state.values is not None and selector in state.values:
            return 0
        return await self.ask(state.owner, Ask.SIZE, state.task_id, selector)

    def release(self, state):
        """A proxy of the task went away (any thread): free the result once nobody refers to
        it (here or on another rank) and it has finished."""
        if state.foreign:
            if state.held:
                state.held = False
                self.refs.released(state.task_id, TASK, state.owner)
        elif not state.released:
            self._transport.call_soon(self._release, state)

    def escape(self, state):
        """A proxy of the task is being pickled (any thread).

        Returns
        -------
        int
            The lender its pickle names (this rank), or -1 if it travels uncounted (see
            :mod:`.borrowers`).
        """
        return self.refs.pickled(state.task_id, TASK, state.owner)

    def escape_tessera(self, tessera_id, rank):
        """A proxy of a tessera is being pickled (any thread); as :meth:`escape`."""
        return self.refs.pickled(tessera_id, TESSERA, rank)

    def adopt(self, state, lender):
        """A task proxy arrived here by pickle: count it (any thread)."""
        state.client = self
        state.held = self.refs.unpickled(state.task_id, TASK, state.owner, lender)

    def adopt_tessera(self, tessera_id, rank, lender):
        """A tessera proxy arrived here by pickle; returns whether it is counted."""
        return self.refs.unpickled(tessera_id, TESSERA, rank, lender)

    def mark_done(self, state, error):
        """Record an outcome reported by other means than a Completed record."""
        self._finish(state, error)
        self._bridge.flush()

    def drain(self, timeout=None, stuck_after=None):
        """Block until every task this client submitted has finished.

        Parameters
        ----------
        timeout : float or None
            Seconds to wait at most (``None``: no limit).
        stuck_after : float or None
            Give up once no task has finished for this many seconds while a call on a
            collective array has a failed member and members that have not finished (they wait
            in a collective the failed member never joined: nothing can end it). ``None``: never.

        Returns
        -------
        bool or str
            ``True`` if all finished within ``timeout`` seconds, ``False`` if not; if it gave up
            for ``stuck_after``, a message naming the stuck call and the workers that wait.
        """
        with self._idle:
            self._draining += 1
            try:
                if stuck_after is None:
                    return self._idle.wait_for(lambda: self.outstanding == 0, timeout)
                return self._drain_or_stuck(timeout, stuck_after)
            finally:
                self._draining -= 1

    def _drain_or_stuck(self, timeout, stuck_after):
        # (``_idle`` held) drain() with ``stuck_after``: see there.
        deadline = None if timeout is None else time.monotonic() + timeout
        last, since = self.outstanding, time.monotonic()
        while self.outstanding:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            step = 0.25 if deadline is None else min(0.25, deadline - now)
            self._idle.wait(step)
            now = time.monotonic()
            if self.outstanding != last:
                last, since = self.outstanding, now
            elif now - since >= stuck_after and self.outstanding:
                stuck = self._stuck_collective()
                if stuck is not None:
                    return stuck
                since = now
        return True

    def collective_call(self, states):
        """Remember the member tasks of one call (or construction) of a collective array.

        Parameters
        ----------
        states : sequence of TaskState
            One per member, in member order.
        """
        with self._lock:
            calls = self._collective_calls
            calls.append(tuple(states))
            if len(calls) >= self._collective_prune:
                calls[:] = [c for c in calls if any(s.status not in _FINISHED for s in c)]
                self._collective_prune = max(64, 2 * len(calls))

    def _stuck_collective(self):
        # (lock held) What holds a collective array's call up for ever, if anything: one of its
        # members failed and others have not finished. None if nothing does.
        for call in self._collective_calls:
            failed = [s for s in call if s.status is TaskStatus.FAILED]
            waiting = [s for s in call if s.status not in _FINISHED]
            if failed and waiting:
                first = failed[0]
                try:
                    error = first.error if isinstance(first.error, BaseException) \
                        else unpack_error(first.error)
                    what = f'{type(error).__name__}: {error}'
                except Exception:           # (the message must not fail for an odd error)
                    what = 'an error'
                return (f'{first.label} (task {first.task_id}) failed on worker:{first.owner} '
                        f'({what}), and its other members on '
                        f'{", ".join(f"worker:{s.owner}" for s in waiting)} have not finished: '
                        f'they wait in a collective the failed member never joined, which '
                        f'nothing can end')
        return None

    async def barrier(self):
        """Wait until every task submitted so far has finished (errors are not raised)."""
        with self._lock:
            states = [s for s in self._tasks.values() if s.status not in _FINISHED]
            groups = list(self._groups)
        for state in states:
            try:
                await self.wait(state)
            except Exception:
                pass
        for group in groups:
            await self.wait_group(group, on_failure=False)

    # -- progress thread -----------------------------------------------------------------------------

    def on_completed(self, source, record):
        """A task of this client ended."""
        # Members first: a member's state enters _tasks before it leaves _members.
        member = self._members.get(record.task_id)
        if member is not None:
            self._finish_member(member[0], member[1], record.error)
            return
        state = self._tasks.get(record.task_id)
        if state is not None:
            self._finish(state, record.error)

    def on_completed_many(self, source, record):
        """Several tasks of this client ended well (members of an array call)."""
        tasks, members = self._tasks, self._members
        for task_id in record.task_ids:
            member = members.get(task_id)     # (first: see on_completed)
            if member is not None:
                self._finish_member(member[0], member[1], None)
                continue
            state = tasks.get(task_id)
            if state is not None:
                self._finish(state, None)

    def _finish(self, state, error):
        with self._lock:
            if state.status in _FINISHED:
                return
            state.status = TaskStatus.FAILED if error is not None else TaskStatus.DONE
            state.error = error
            callbacks, state.callbacks = state.callbacks or (), None
            holds, state.holds = state.holds, None
            pin, state.pin = state.pin, 0
            self.outstanding -= 1
            if self.outstanding == 0:
                self.queued_calls.drained()
                if self._draining:
                    self._idle.notify_all()
            pending = self._pending[state.owner] = self._pending[state.owner] - 1
            if pending == self.max_pending:
                self._room.notify_all()
            group = state.group
            if group is not None:
                waiters, group_holds = self._member_ended(group, state.index, error)
        for loop, fn, resolves in callbacks:
            if resolves:
                self._bridge.resolve(loop, fn, state)
            else:
                self._bridge.post(loop, fn, state)
        if group is not None:
            for loop, fn, _ in waiters:
                self._bridge.resolve(loop, fn, group)
            del group_holds
        if pin:
            self.refs.released(pin, TESSERA, state.owner)
        if state.released:
            self._drop(state)
        del holds

    def _finish_member(self, group, index, error):
        # _finish for a member of an array call that has no TaskState (progress thread, or
        # any thread for a lost worker).
        task_id = group.task_ids[index]
        owner = group.members[index][1]
        state = None
        with self._lock:
            if group.status[index] != ArrayCall.PENDING:
                return
            if self._members.pop(task_id, None) is None:
                # Its TaskState was made since the record was looked up: finish that.
                state = group.states.get(index) if group.states else None
                if state is None:
                    return
            else:
                self.outstanding -= 1
                if self.outstanding == 0:
                    self.queued_calls.drained()
                    if self._draining:
                        self._idle.notify_all()
                pending = self._pending[owner] = self._pending[owner] - 1
                if pending == self.max_pending:
                    self._room.notify_all()
                pin = group.pins.pop(index, 0) if group.pins else 0
                waiters, holds = self._member_ended(group, index, error)
                released = group.released
        if state is not None:
            self._finish(state, error)
            return
        for loop, fn, _ in waiters:
            self._bridge.resolve(loop, fn, group)
        if pin:
            self.refs.released(pin, TESSERA, owner)
        if released:
            self._drop_member(group, index)
        del holds

    def _member_ended(self, group, index, error):
        # (lock held) Member ``index`` of an array call ended: its status, and the waiters to
        # wake (all once every member has ended; those that asked, at a failure). Returns
        # ``(waiters, holds)``; the argument proxies are let go (outside the lock) at the end.
        if error is None:
            group.status[index] = ArrayCall.DONE
        else:
            group.status[index] = ArrayCall.FAILED
            if group.errors is None:
                group.errors = {}
            group.errors[index] = error
            group.failures += 1
        group.remaining -= 1
        waiters = group.waiters
        if group.remaining == 0:
            self._groups.discard(group)
            holds, group.holds = group.holds, None
            group.waiters = None
            return waiters or (), holds
        if error is not None and waiters:
            group.waiters = [w for w in waiters if not w[2]]
            return [w for w in waiters if w[2]], None
        return (), None

    def _drop_member(self, group, index):
        # A member with no TaskState ended and its TaskArray is gone: free its result.
        if group.status[index] == ArrayCall.FAILED:
            error = unpack_error(group.errors[index]) if not isinstance(
                group.errors[index], BaseException) else group.errors[index]
            warnings.warn(f'{group.label} (task {group.task_ids[index]}) failed and nobody '
                          f'awaited it: {type(error).__name__}: {error}', RuntimeWarning)
        if not self.closed:
            self._queue_drop(group.members[index][1], 0, group.task_ids[index])

    def value_arrived(self, task_id):
        """A successful Value of task ``task_id`` reached this rank (progress thread).

        If this client submitted the task, it is done: its owner sends no Completed after a
        Value to the task's caller (see ``Worker._finished``).
        """
        state = self._tasks.get(task_id)
        if state is not None and state.status not in _FINISHED:
            self._finish(state, None)

    def _on_value(self, state, selector, record):
        if record.ok and state.status not in _FINISHED:
            self.value_arrived(state.task_id)
        with self._lock:
            waiters = state.fetching.pop(selector, ()) if state.fetching else ()
        if len(waiters) == 1:           # the common case: one coroutine awaits the value
            loop, future = waiters[0]
            self._bridge.resolve(loop, self._resolve, state, selector, record, (future,))
            return
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
                state.seen = True           # the failure reaches whoever awaits the fetch
        except Exception as exc:
            error = SerialisationError(f'the result of {state.label} (task {state.task_id}) '
                                       f'arrived but cannot be unpickled here: '
                                       f'{type(exc).__name__}: {exc}')
            error.__cause__ = exc
        for future in futures:
            settle(future, value, error)

    def _release(self, state):
        if self.refs.release_owned(state.task_id, TASK, state.owner):
            self._free(state)

    def _free(self, state):
        state.released = True
        if state.status in _FINISHED:
            self._drop(state)

    def _on_free(self, kind, uid, where):
        # In a cycle: the reference counts say nobody refers to ``uid`` any more.
        if kind == TESSERA:
            self._release_tessera(uid, where)
            return
        state = self._tasks.get(uid)
        if state is not None and not state.released:
            self._free(state)

    def _drop(self, state):
        if state.status is TaskStatus.FAILED and not state.seen:
            error = self.error_of(state)
            message = (f'{state.label} (task {state.task_id}) failed and nobody awaited it: '
                       f'{type(error).__name__}: {error}')
            warnings.warn(message, RuntimeWarning)
        if self._tasks.pop(state.task_id, None) is None or self.closed:
            return
        self._queue_drop(state.owner, 0, state.task_id)

    def _queue_drop(self, owner, kind, uid):
        # Freed results (kind 0) and tesserae (kind 1) are batched: one Drop per owner when the
        # rank idles (an idle hook of the transport), after _DROP_AGE s, or at _DROP_BATCH ids.
        now = time.monotonic()
        batch = self._drops.get(owner)
        if batch is None:
            batch = self._drops[owner] = ([], [])
        if not self._drops_since:
            self._drops_since = now
        ids = batch[kind]
        ids.append(uid)
        if len(ids) >= _DROP_BATCH or now - self._drops_since > _DROP_AGE:
            self.flush_drops()

    def release_tessera(self, tessera_id, rank, foreign=False):
        """A counted proxy of a tessera went away (any thread); the proxy made here by
        ``remote()`` unless ``foreign``. Once no proxy is left on any rank, the tessera is
        destroyed on its worker after the calls queued on it have run (S15)."""
        if self.closed:
            return
        if foreign:
            self.refs.released(tessera_id, TESSERA, rank)
        else:
            self._transport.call_soon(self._release_owned_tessera, tessera_id, rank)

    def _release_owned_tessera(self, tessera_id, rank):
        if self.refs.release_owned(tessera_id, TESSERA, rank):
            self._release_tessera(tessera_id, rank)

    def _release_tessera(self, tessera_id, rank):
        if not self.closed and rank not in self.lost:
            self._queue_drop(rank, 1, tessera_id)

    def flush_drops(self):
        """Send the batched Drops (in a progress cycle; cheap when there are none)."""
        if not self._drops:
            return
        drops, self._drops = self._drops, {}
        self._drops_since = 0.0
        if self.closed:
            return
        for owner, (tasks, tesserae) in drops.items():
            if owner not in self.lost:
                self._transport.send(owner, Drop(tuple(tasks), tuple(tesserae)))

    def lose(self, rank, reason):
        """Worker ``rank`` is gone: fail what this rank waits for from it (any thread).

        Every unfinished task it owns fails with :class:`RuntimeDisconnectedError` naming the
        worker and the task; fetches and questions waiting for it fail the same way; later
        calls to it raise at the call.

        Parameters
        ----------
        rank : int
            The lost worker.
        reason : str
            Why it is considered lost (for the messages).

        Returns
        -------
        list of str
            Labels of the tasks that failed, as ``'Cls.method (task N)'``.
        """
        self.lost.add(rank)
        self.refs.lost(rank)
        with self._lock:
            states = [s for s in self._tasks.values()
                      if s.owner == rank and s.status not in _FINISHED]
            members = [(group, index) for group in self._groups
                       for index, (_, owner) in enumerate(group.members)
                       if owner == rank and group.task_ids[index] in self._members]
        labels = []
        for state in states:
            label = f'{state.label} (task {state.task_id})'
            labels.append(label)
            self._finish(state, RuntimeDisconnectedError(
                f'{label} did not finish: worker:{rank} was lost ({reason})'))
        for group, index in members:
            label = f'{group.label} (task {group.task_ids[index]})'
            labels.append(label)
            self._finish_member(group, index, RuntimeDisconnectedError(
                f'{label} did not finish: worker:{rank} was lost ({reason})'))
        self._requests.fail_rank(rank, pack_error(RuntimeDisconnectedError(
            f'worker:{rank} was lost ({reason}) before it answered'), ''))
        self._bridge.flush()
        return labels


def _answer(future, record):
    if future.done():
        return
    try:
        if record.ok:
            future.set_result(loads(record.payload))
        else:
            future.set_exception(unpack_error(record.payload))
    except Exception as exc:        # an answer that cannot be rebuilt here
        future.set_exception(exc)


def _name_unpicklable(label, args, kwargs, threshold):
    """Raise a SerialisationError naming the first argument that cannot be pickled."""
    named = [(f'positional argument {i}', v) for i, v in enumerate(args)]
    named += [(f'keyword argument {k!r}', v) for k, v in kwargs.items()]
    for name, value in named:
        try:
            with uncounted():          # thrown away: no reference travels
                dumps(value, threshold, lock=False)
        except SerialisationError as error:
            # The message already holds pickle's and cloudpickle's reasons: their own
            # tracebacks (four, inside the pickling machinery) would only bury the user's line.
            raise SerialisationError(f'{name} of {label}() cannot be pickled: {error}') from None
