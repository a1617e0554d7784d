"""The worker's side: hosting tesserae and running the calls made on them.

Calls on one tessera run one at a time in arrival order (which is call order for one caller). A
call whose arguments are still on their way holds back the later calls on the same tessera only.
Arguments that are results of other tasks are fetched straight from the worker that holds them
(worker to worker) as soon as the call arrives, so transfers overlap earlier calls.
"""

import collections
import inspect
import logging
import signal
import threading

from ..core.references import uncounted
from ..core.task import Task, TaskStatus
from ..core.worker_task import reset_current_task, set_current_task
from ..errors import DependencyError
from ..messages import Ask, Call, Completed, CompletedMany, Fetch, Op, Select, Stopped, Value, anonymous_tessera_id
from ..serialisation import dumps, loads
from .cycles import CycleDetector
from .failures import pack_error, unpack_error
from .ownership import private, snapshot
from .warehouse import Entry, missing_object, select, value_for

__all__ = ['Worker', 'TesseraHost']

_log = logging.getLogger(__name__)

# Ctrl-C, or the head interrupting a failed run (a KeyboardInterrupt in the main thread); a
# coroutine being closed. Anything else a method raises fails that call only.
_ENDS_THE_WORKER = (KeyboardInterrupt, GeneratorExit)


class _Retire:
    """The end of a tessera's queue: no proxy refers to it any more."""
    ready = True


RETIRE = _Retire()


class TesseraHost:
    """One tessera on this worker: the user object and its queue of tasks.

    Parameters
    ----------
    worker : Worker
        The worker hosting it.
    tessera_id : int
        Its id.
    name : str
        Class name, for messages.
    """

    def __init__(self, worker, tessera_id, name):
        self.worker = worker
        self.tessera_id = tessera_id
        self.name = name
        self.obj = None
        self.error = None
        self.queue = collections.deque()
        self.busy = False
        self.current = None             # the task running (or awaiting, async) on it
        self.max_retries = 0            # the class's @tessera(max_retries=N)

    def close(self):
        """The tessera has been destroyed (a member of a collective array frees its
        communicator)."""

    def push(self, task):
        """Queue ``task``; run what can run."""
        self.queue.append(task)
        self.pump()

    def pump(self, _task=None):
        """Run queued tasks in order until one must wait (arguments, or an async method)."""
        while self.queue and not self.busy:
            task = self.queue[0]
            if not task.ready:
                return
            self.queue.popleft()
            if task is RETIRE:
                self.worker.retire(self)
                return
            self._run(task)
            if not self.busy:
                self.current = None

    def where(self, task):
        return (f'Remote traceback (worker:{self.worker.rank}, tessera {self.name}'
                f'({self.tessera_id}), method {task.method}):')

    def _run(self, task):
        if task.dependency_error is not None:
            task.set_exception(task.dependency_error)
            return
        if self.error is not None:      # the constructor failed: every call raises its error
            task.set_exception(unpack_error(self.error))
            return
        worker = self.worker
        task.status = TaskStatus.RUNNING
        self.current = task
        if worker.timeline is not None:
            worker.timeline.start(task)
        attempt = 0
        while True:
            worker.in_user_code = True  # before the check: a Stop arriving now interrupts us
            token = set_current_task(task)
            try:
                if worker.stop_code is not None:    # the run failed: run no more user code
                    return
                value = self._invoke(task)
            except _ENDS_THE_WORKER:
                raise
            except BaseException as exc:    # sys.exit(), CancelledError, ... fail the call only
                if self._retry(task, exc, attempt):
                    attempt += 1
                    continue
                self._fail(task, exc)
                return
            finally:
                worker.in_user_code = False
                reset_current_task(token)
            break
        if value is not None and inspect.isawaitable(value):
            self.busy = True
            self.worker.loop.create_task(self._await(task, value, attempt))
        else:
            task.release_args()
            value = snapshot(value)     # only `value` refers to the result here
            task.set_result(value)

    def _invoke(self, task):
        """Run the task's operation on the user object; returns what it returned."""
        args, kwargs = task.args_value(), task.kwargs_value()
        if task.op is None:
            cls, args = args[0], args[1:]
            self.max_retries = getattr(cls, 'max_retries', 0) or 0
            self.obj = getattr(cls, '__wrapped__', cls)(*args, **kwargs)
            return None
        if task.op is Op.CALL:
            return getattr(self.obj, task.method)(*args, **kwargs)
        if task.op is Op.GETATTR:
            return getattr(self.obj, task.method)
        setattr(self.obj, task.method, args[0])
        return None

    def _retry(self, task, exc, attempt):
        """Whether to run ``task`` again after it raised ``exc`` (S21: in place, same tessera)."""
        limit = task.retries if task.retries >= 0 else self.max_retries
        if attempt >= limit or not isinstance(exc, Exception):
            return False
        _log.warning('%s.%s (task %d) failed, retry %d of %d: %s: %s', self.name, task.method,
                     task.uid, attempt + 1, limit, type(exc).__name__, exc)
        return True

    async def _await(self, task, awaitable, attempt):
        set_current_task(task)          # in this coroutine's own context
        try:
            while True:
                self.worker.in_user_code = True
                try:
                    if awaitable is None:           # a retry: call the method again
                        awaitable = self._invoke(task)
                    value = (await awaitable) if inspect.isawaitable(awaitable) else awaitable
                except _ENDS_THE_WORKER:
                    raise
                except BaseException as exc:
                    if self.worker.stop_code is None and self._retry(task, exc, attempt):
                        attempt += 1
                        awaitable = None
                        continue
                    self._fail(task, exc)
                    break
                awaitable = None
                task.release_args()
                value = snapshot(value)
                task.set_result(value)
                break
        finally:
            self.busy = False
            self.current = None
            self.worker.in_user_code = False
        self.pump()

    def _fail(self, task, exc):
        task.where = self.where(task)
        if task.op is None:
            self.error = pack_error(exc, task.where)
        task.set_exception(exc)


class Anonymous:
    """The user object of a worker's anonymous tessera (Mosaic's ``tess-anon``)."""

    def apply(self, value, name, *args, **kwargs):
        """``value.name(*args, **kwargs)``: a method of a task's result, run where it is stored.

        Raises
        ------
        AttributeError
            If the value has no attribute ``name``.
        TypeError
            If that attribute is not callable.
        """
        method = getattr(value, name)
        if not callable(method):
            raise TypeError(f'{type(value).__name__}.{name} is not callable')
        return method(*args, **kwargs)


class Worker:
    """Hosts tesserae on a worker rank.

    Parameters
    ----------
    rank : int
        This rank.
    transport : Transport
        For replies and fetches.
    bridge : LoopBridge
        How the progress thread reaches the worker loop.
    requests : Requests
        Fetch request ids of this rank.
    warehouse : Warehouse
        Where results are kept.
    oob_threshold : int
        Bytes from which buffers travel out of band.
    loop : asyncio.AbstractEventLoop
        The worker's loop (runs on the rank's main thread).
    run : int
        The run this worker serves (runs one after another in a process: ids never repeat).
    """

    def __init__(self, rank, transport, bridge, requests, warehouse, oob_threshold, loop, run=0):
        self.rank = rank
        self.transport = transport
        self.bridge = bridge
        self.requests = requests
        self.warehouse = warehouse
        self.threshold = oob_threshold
        self.loop = loop
        self.hosts = {}
        self.cycles = CycleDetector(rank, transport, loop, self.hosts)
        anonymous = TesseraHost(self, anonymous_tessera_id(rank, run), 'result')
        anonymous.obj = Anonymous()
        self.hosts[anonymous.tessera_id] = anonymous
        self.parked = collections.defaultdict(list)
        self.output = None              # the OutputPrefixer of this rank, if any
        self.timeline = None            # a Timeline when tracing
        self.stop_code = None           # set when the head ends a failed run
        self.in_user_code = False       # the main thread is running a method (progress: read)
        self.stopped = loop.create_future()
        # (task id, rank) of the last successful Value sent: a Value to the caller of a task
        # tells it that the task is done, so its Completed is left out (Client._on_value)
        self.implied = None
        self.value_arrived = None       # the rank's Client.value_arrived (set by the runtime)
        self.objects = None             # the rank's Objects (answers fetches of warehouse objects)
        self.collective = None          # the CollectiveRunner, from the first collective member
        # Array calls: the members' successes go back to the caller together (CompletedMany).
        self._batches = {}              # task id -> its _ArrayBatch, until the task ends
        self._held = []                 # _ArrayBatches holding successes not sent yet
        self._held_lock = threading.Lock()      # (the progress thread sends the late ones)
        self._joining = None            # JoinGroup: the next tessera is a collective member

    # -- progress thread: records that need the loop are posted to it ------------------------------

    def on_create(self, source, record):
        """Build a tessera, on the worker loop."""
        self.bridge.post(self.loop, self._create, record)

    def on_call(self, source, record):
        """Queue a call on its tessera, on the worker loop."""
        self.bridge.post(self.loop, self._call, record)

    def on_call_array(self, source, record):
        """Queue an array call on its members here, on the worker loop."""
        self.bridge.post(self.loop, self._call_array, record)

    def on_join_group(self, source, record):
        """The next tessera the head builds here is a collective array's member (on the loop,
        in order with the records around it)."""
        self.bridge.post(self.loop, self._join_group, record)

    def _join_group(self, record):
        self._joining = record

    @property
    def collective_busy(self):
        """bool: a collective array's task is running on the collective thread."""
        return self.collective is not None and self.collective.busy

    def on_stop(self, source, record):
        """Stop after the current task; or, if the run failed (``now``), interrupt it.

        The interruption is a ``KeyboardInterrupt`` raised in the main thread (where user code
        runs), so that the worker still ends through ``MPI_Finalize`` with the head's exit code.
        """
        self.transport.unwatch()            # the head ends the run: its silence is expected
        if record.now:
            self.stop_code = record.code
            if self.output is not None:
                self.output.drain(0.5)
            self.transport.send(source, Stopped(self.rank))
            if self.in_user_code:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        self.bridge.post(self.loop, self._stop, source, record)

    def on_fetch(self, source, record):
        """Answer a fetch once the task's outcome is stored here (a warehouse object: now)."""
        if record.selector is Select.OBJECT:
            self.objects.on_fetch(source, record)
            return
        self.warehouse.subscribe(record.task_id, lambda entry: self._answer(record, entry))

    def on_probe(self, source, record):
        """Follow a cycle probe (on the loop, where the tesserae's state is)."""
        self.bridge.post(self.loop, self.cycles.on_probe, record)

    def on_cycle(self, source, record):
        """A cycle of waits closed at one of our methods: fail its wait."""
        self.bridge.post(self.loop, self.cycles.on_cycle, record)

    def on_query(self, source, record):
        """Answer ``Ask.INIT`` once the task has been queued, ``Ask.SIZE`` once it is done."""
        if record.kind is Ask.SIZE:
            self.warehouse.subscribe(record.task_id, lambda entry: self._answer_size(record, entry))
        else:
            # On the loop, after the records that came before (the call itself among them).
            self.bridge.post(self.loop, self.reply, record, True, None)

    def _answer_size(self, record, entry):
        if not entry.ok:
            self.reply(record, False, entry.error)
            return
        try:
            with uncounted():       # measured and thrown away: no reference travels
                size = dumps(select(entry.value, record.selector), self.threshold,
                             lock=False).nbytes
        except Exception as exc:
            self.reply(record, False, pack_error(exc, ''))
            return
        self.reply(record, True, size)

    def reply(self, record, ok, value):
        """Answer a query: ``value`` (pickled here) if ``ok``, else an error Payload."""
        payload = value if not ok else dumps(value, lock=False)
        self.transport.send(record.requester, Value(record.request_id, ok, payload))

    def on_drop(self, source, record):
        """Free results, and tesserae, nobody refers to any more."""
        if record.task_ids:
            self.warehouse.drop(record.task_ids)
        if record.tessera_ids:
            self.bridge.post(self.loop, self._retire_tesserae, record.tessera_ids)

    def _retire_tesserae(self, tessera_ids):
        for tessera_id in tessera_ids:
            host = self.hosts.get(tessera_id)
            if host is not None:
                host.push(RETIRE)           # after the calls already queued on it

    def retire(self, host):
        """``host``'s queue reached its end: forget it and release the user object (S15)."""
        self.hosts.pop(host.tessera_id, None)
        host.close()
        host.obj = None                     # the user's __del__ runs now (unless in a cycle)
        _log.debug('worker:%d: tessera %s(%d) destroyed', self.rank, host.name, host.tessera_id)

    def _answer(self, record, entry):
        reply = value_for(record, entry, self.threshold)
        if reply.ok:
            self.implied = (record.task_id, record.requester)
        if self.timeline is not None:
            self.timeline.sent(record.task_id, reply.payload.nbytes)
        self.transport.send(record.requester, reply)

    # -- worker loop ---------------------------------------------------------------------------------

    def _stop(self, source, record):
        if not record.now:
            if self.output is not None:     # every line out before the head hears we stopped
                self.output.drain()
            self.transport.send(source, Stopped(self.rank))
        if not self.stopped.done():
            self.stopped.set_result(record.code)

    def _create(self, record):
        if self.stop_code is not None:          # the run failed: build nothing more
            return
        _log.debug('worker:%d: building %s (tessera %d) for rank %d', self.rank, record.name,
                   record.tessera_id, record.caller)
        # The head's JoinGroup names its next CreateTessera here; one from another worker may
        # arrive in between (their packets interleave) and must leave it for that one.
        joining = None
        if record.caller == 0:
            joining, self._joining = self._joining, None
        if joining is not None:
            host = self._collective_host(record, joining)
        else:
            host = TesseraHost(self, record.tessera_id, record.name)
        self.hosts[record.tessera_id] = host
        cls_payload, payload = record.payload
        host.push(self._make_task(record, None, '__init__', payload, record.deps,
                                  prefix=(cls_payload,)))
        for call in self.parked.pop(record.tessera_id, ()):
            self._call(call)

    def _call(self, record, flush=True):
        if self.stop_code is not None:          # the run failed: run nothing more
            return
        host = self.hosts.get(record.tessera_id)
        if host is None:        # its creation is still on the way from another rank
            self.parked[record.tessera_id].append(record)
            return
        task = self._make_task(record, record.op, record.method, record.payload, record.deps,
                               host=host)
        task.retries = record.retries
        numbers = getattr(host, 'numbers', None)
        if numbers is not None:         # a collective member: its place in the head's order
            numbers[task.uid] = self.collective.number()
        host.push(task)
        if flush and self.bridge.about_to_wait(self.loop):
            self.transport.flush_now()  # its reply (if it ran) leaves now, not at the loop's wait

    def _call_array(self, record):
        # One Call per member, in member order; each unpickles its own copy of the arguments
        # (the first one the received buffers, the others copies of them).
        # Copies are made before any member runs (a push may run its call at once).
        # Their successes are held and sent in one CompletedMany when the last member here
        # ends (failures go at once); successes held while a member still runs are sent when
        # the progress thread next idles (flush_held), so none waits for long.
        task_ids, tessera_ids, caller, op, method, payload, deps, retries = record
        payloads = [payload] + [payload.copy() for _ in range(len(task_ids) - 1)]
        if len(task_ids) > 1:
            batch = _ArrayBatch(caller, len(task_ids))
            batches = self._batches
            for task_id in task_ids:
                batches[task_id] = batch
        call = self._call
        for index, task_id in enumerate(task_ids):
            call(Call(task_id, tessera_ids[index], caller, op, method, payloads[index], deps,
                      retries), flush=False)
        if self.bridge.about_to_wait(self.loop):
            self.transport.flush_now()  # the replies of the members that ran leave now

    def _member_ended(self, batch, task_id):
        # A member of an array call ended (``task_id``: a success to report, or None).
        with self._held_lock:
            batch.remaining -= 1
            if task_id is not None:
                batch.done.append(task_id)
            if batch.remaining and batch.done:
                if not batch.held:
                    batch.held = True
                    self._held.append(batch)
                return
            done, batch.done = batch.done, []
        self._send_done(batch.caller, done)

    def _send_done(self, caller, done):
        if len(done) == 1:
            self.transport.send(caller, Completed(done[0], None))
        elif done:
            self.transport.send(caller, CompletedMany(tuple(done)))

    def flush_held(self):
        """Send the successes of array members held while other members still run (a busy
        hook of the transport: a member's completion waits at most about 2 ms, or until the
        rank idles)."""
        if not self._held:
            return
        with self._held_lock:
            held, self._held = self._held, []
            sends = []
            for batch in held:
                batch.held = False
                sends.append((batch.caller, batch.done))
                batch.done = []
        for caller, done in sends:
            self._send_done(caller, done)

    def _collective_host(self, record, joining):
        from .collective import CollectiveHost, CollectiveRunner
        if self.collective is None:
            self.collective = CollectiveRunner(self.rank)
        host = CollectiveHost(self, record.tessera_id, record.name, joining.ranks, joining.index,
                              self.collective, self.transport.comm)
        host.numbers[record.task_id] = self.collective.number()
        return host

    def _make_task(self, record, op, method, payload, deps, prefix=(), host=None):
        task = Task(record.task_id, record.tessera_id, record.caller, method, self.rank)
        task.op = op
        task.where = ''
        task.set_finish_callback(self._finished)
        if self.timeline is not None:
            self.timeline.arrive(task, payload.nbytes + (prefix[0].nbytes if prefix else 0))
        host = host or self.hosts[record.tessera_id]
        try:
            args, kwargs = loads(payload)
            if prefix:
                args = (loads(prefix[0]),) + tuple(args)
                shift = 1
            else:
                shift = 0
        except Exception as exc:        # e.g. a class that does not exist on this rank
            task.set_arguments((), {}, 1, None)
            task.where = host.where(task)
            task.fail_dependency(exc)
            return task
        task.set_arguments(args, kwargs, len(deps), host.pump)
        for dep in deps:
            slot = dep.slot + shift if isinstance(dep.slot, int) else dep.slot
            self._resolve(task, dep._replace(slot=slot))
        return task

    def _resolve(self, task, dep):
        if dep.selector is Select.OBJECT:
            # A warehouse object: read here if this rank holds it (its owner, or a published
            # copy); fetched from its owner otherwise; missing here on its owner means dropped.
            entry = self.warehouse.find(dep.task_id)
            if entry is not None:
                self._fill_local(task, dep, entry)
                return
            dropped = self.warehouse.dropped(dep.task_id)
            if dropped or dep.owner == self.rank:
                self._fail_dep(task, dep, missing_object(dep.task_id, dropped, dep.label))
                return
        elif dep.owner == self.rank:
            self.warehouse.subscribe(dep.task_id, lambda entry: self._fill_local(task, dep, entry))
            return
        request_id = self.requests.new(
            lambda record: self._on_dependency(task, dep, record), dep.owner)
        self.transport.send(dep.owner, Fetch(request_id, dep.task_id, dep.selector, self.rank))

    def _on_dependency(self, task, dep, record):
        if record.ok and self.value_arrived is not None:
            self.value_arrived(dep.task_id)     # a call of this rank's: the Value says it is done
        self.bridge.post(self.loop, self._fill_remote, task, dep, record)

    def _fill_local(self, task, dep, entry):
        if not entry.ok:
            self._fail_dep(task, dep, unpack_error(entry.error))
            return
        try:
            value = select(entry.value, dep.selector)
        except (IndexError, KeyError) as exc:
            self._fail_dep(task, dep, exc)
            return
        if dep.selector is not Select.DONE:
            value = private(value)      # the consumer's own copy: it may change it in place
        task.fill(dep.slot, value, remove=dep.selector is Select.DONE)

    def _fill_remote(self, task, dep, record):
        if self.timeline is not None:
            self.timeline.fetched(task, record.payload.nbytes)
        if not record.ok:
            self._fail_dep(task, dep, unpack_error(record.payload))
            return
        try:
            value = loads(record.payload)
        except Exception as exc:
            self._fail_dep(task, dep, exc)
            return
        task.fill(dep.slot, value, remove=dep.selector is Select.DONE)

    def _fail_dep(self, task, dep, upstream):
        slot = f'argument {dep.slot!r}' if isinstance(dep.slot, str) else \
            f'positional argument {dep.slot}'
        host = self.hosts.get(task.tessera_id)
        label = f'{host.name}.{task.method}' if host is not None else task.method
        error = DependencyError(f'{label} (task {task.uid}) was not run: its {slot}, from '
                                f'{dep.label}, could not be obtained: '
                                f'{type(upstream).__name__}: {upstream}')
        error.__cause__ = upstream
        task.fail_dependency(error)

    def _finished(self, task, value, error):
        host = self.hosts.get(task.tessera_id)
        label = f'{host.name if host is not None else "?"}.{task.method}'
        if self.timeline is not None:
            self.timeline.finish(task, label.split('.')[0], error is not None)
        batch = self._batches.pop(task.uid, None) if self._batches else None
        if error is None:
            self.warehouse.put(task.uid, Entry(True, value, None, label))   # answers its fetches
            if self.implied == (task.uid, task.sender):
                if batch is not None:
                    self._member_ended(batch, None)
                return          # its caller fetched the value: the Value went out, it implies this
            if batch is not None:
                self._member_ended(batch, task.uid)
                return
            reply = None
        else:
            _log.debug('worker:%d: task %d (%s) failed: %s: %s', self.rank, task.uid, task.method,
                       type(error).__name__, error)
            where = '' if isinstance(error, DependencyError) else task.where
            reply = pack_error(error, where)
            self.warehouse.put(task.uid, Entry(False, None, reply))
            if batch is not None:
                self._member_ended(batch, None)
        self.transport.send(task.sender, Completed(task.uid, reply))


class _ArrayBatch:
    """The members of one array call on this worker, while some have not ended."""

    __slots__ = ('caller', 'remaining', 'done', 'held')

    def __init__(self, caller, count):
        self.caller = caller
        self.remaining = count
        self.done = []          # ids of the members that succeeded, not reported yet
        self.held = False       # in Worker._held
