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

from ..core.task import Task, TaskStatus
from ..errors import DependencyError
from ..messages import Completed, Fetch, Op, Select, Stopped
from ..serialisation import loads
from .failures import pack_error, unpack_error
from .warehouse import Entry, missing_object, select, value_for

__all__ = ['Worker', 'TesseraHost']

_log = logging.getLogger(__name__)

# Ctrl-C, or the head interrupting a failed run (a KeyboardInterrupt in the main thread); a
# coroutine being closed. Anything else a method raises fails that call only.
_ENDS_THE_WORKER = (KeyboardInterrupt, GeneratorExit)


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
            self._run(task)

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
        worker.in_user_code = True      # before the check: a Stop arriving now interrupts us
        try:
            if worker.stop_code is not None:    # the run failed: run no more user code
                return
            args, kwargs = task.args_value(), task.kwargs_value()
            if task.op is None:
                cls, args = args[0], args[1:]
                self.obj = getattr(cls, '__wrapped__', cls)(*args, **kwargs)
                value = None
            elif task.op is Op.CALL:
                value = getattr(self.obj, task.method)(*args, **kwargs)
            elif task.op is Op.GETATTR:
                value = getattr(self.obj, task.method)
            else:
                setattr(self.obj, task.method, args[0])
                value = None
        except _ENDS_THE_WORKER:
            raise
        except BaseException as exc:    # sys.exit(), CancelledError, ... fail the call only
            self._fail(task, exc)
            return
        finally:
            worker.in_user_code = False
        if value is not None and inspect.isawaitable(value):
            self.busy = True
            self.worker.loop.create_task(self._await(task, value))
        else:
            task.set_result(value)

    async def _await(self, task, awaitable):
        try:
            self.worker.in_user_code = True
            value = await awaitable
        except _ENDS_THE_WORKER:
            raise
        except BaseException as exc:
            self._fail(task, exc)
        else:
            task.set_result(value)
        finally:
            self.busy = False
            self.worker.in_user_code = False
        self.pump()

    def _fail(self, task, exc):
        task.where = self.where(task)
        if task.op is None:
            self.error = pack_error(exc, task.where)
        task.set_exception(exc)


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
    """

    def __init__(self, rank, transport, bridge, requests, warehouse, oob_threshold, loop):
        self.rank = rank
        self.transport = transport
        self.bridge = bridge
        self.requests = requests
        self.warehouse = warehouse
        self.threshold = oob_threshold
        self.loop = loop
        self.hosts = {}
        self.parked = collections.defaultdict(list)
        self.stop_code = None           # set when the head ends a failed run
        self.in_user_code = False       # the main thread is running a method (progress: read)
        self.stopped = loop.create_future()
        self.objects = None             # the rank's Objects (answers fetches of warehouse objects)

    # -- progress thread: records that need the loop are posted to it ------------------------------

    def on_create(self, source, record):
        """Build a tessera, on the worker loop."""
        self.bridge.post(self.loop, self._create, record)

    def on_call(self, source, record):
        """Queue a call on its tessera, on the worker loop."""
        self.bridge.post(self.loop, self._call, record)

    def on_stop(self, source, record):
        """Stop after the current task; or, if the run failed (``now``), interrupt it.

        The interruption is a ``KeyboardInterrupt`` raised in the main thread (where user code
        runs), so that the worker still ends through ``MPI_Finalize`` with the head's exit code.
        """
        if record.now:
            self.stop_code = record.code
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

    def on_drop(self, source, record):
        """Free results nobody refers to any more."""
        self.warehouse.drop(record.task_ids)

    def _answer(self, record, entry):
        self.transport.send(record.requester, value_for(record, entry, self.threshold))

    # -- worker loop ---------------------------------------------------------------------------------

    def _stop(self, source, record):
        if not record.now:
            self.transport.send(source, Stopped(self.rank))
        if not self.stopped.done():
            self.stopped.set_result(record.code)

    def _create(self, record):
        if self.stop_code is not None:          # the run failed: build nothing more
            return
        _log.debug('worker:%d: building %s (tessera %d) for rank %d', self.rank, record.name,
                   record.tessera_id, record.caller)
        host = TesseraHost(self, record.tessera_id, record.name)
        self.hosts[record.tessera_id] = host
        cls_payload, payload = record.payload
        host.push(self._make_task(record, None, '__init__', payload, record.deps,
                                  prefix=(cls_payload,)))
        for call in self.parked.pop(record.tessera_id, ()):
            self._call(call)

    def _call(self, record):
        if self.stop_code is not None:          # the run failed: run nothing more
            return
        host = self.hosts.get(record.tessera_id)
        if host is None:        # its creation is still on the way from another rank
            self.parked[record.tessera_id].append(record)
            return
        host.push(self._make_task(record, record.op, record.method, record.payload, record.deps,
                                  host=host))

    def _make_task(self, record, op, method, payload, deps, prefix=(), host=None):
        task = Task(record.task_id, record.tessera_id, record.caller, method, self.rank)
        task.op = op
        task.where = ''
        task.set_finish_callback(self._finished)
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
            lambda record: self.bridge.post(self.loop, self._fill_remote, task, dep, record))
        self.transport.send(dep.owner, Fetch(request_id, dep.task_id, dep.selector, self.rank))

    def _fill_local(self, task, dep, entry):
        if not entry.ok:
            self._fail_dep(task, dep, unpack_error(entry.error))
            return
        try:
            value = select(entry.value, dep.selector)
        except (IndexError, KeyError) as exc:
            self._fail_dep(task, dep, exc)
            return
        task.fill(dep.slot, value, remove=dep.selector is Select.DONE)

    def _fill_remote(self, task, dep, record):
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
        error = DependencyError(f'{task.method} (task {task.uid}) was not run: its {slot}, from '
                                f'{dep.label}, could not be obtained: '
                                f'{type(upstream).__name__}: {upstream}')
        error.__cause__ = upstream
        task.fail_dependency(error)

    def _finished(self, task, value, error):
        if error is None:
            self.warehouse.put(task.uid, Entry(True, value, None))
            reply = None
        else:
            _log.debug('worker:%d: task %d (%s) failed: %s: %s', self.rank, task.uid, task.method,
                       type(error).__name__, error)
            where = '' if isinstance(error, DependencyError) else task.where
            reply = pack_error(error, where)
            self.warehouse.put(task.uid, Entry(False, None, reply))
        self.transport.send(task.sender, Completed(task.uid, reply))
