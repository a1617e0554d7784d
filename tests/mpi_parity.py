"""Mosaic parity scenarios, run under a real mpiexec by test_parity_mpi.py: ``python mpi_parity.py CASE``.

The seed API's members (S16), arrays of tesserae (S13), ``barrier`` (S25) and ``async_for``
(S26). Rank 0 runs ``case_<CASE>(runtime)`` and prints ``CASE <name> PASSED``.
"""

import asyncio
import sys
import time
import warnings

import numpy as np

import mosaic_mpi as mosaic
from mosaic_mpi import TaskStatus
import scenarios


@mosaic.tessera
class Probe:
    def __init__(self, tag=0):
        self.tag = tag
        self.naps = 0
        self.pending = None

    def make(self, array):
        return array

    def pair(self):
        return 1, 'b'

    def nap(self, seconds, value=None):
        time.sleep(seconds)
        self.naps += 1
        return value

    def whoami(self):
        return mosaic.runtime().rank

    def square(self, x, seconds=0.0):
        time.sleep(seconds)
        return x * x

    def fail(self, message='boom'):
        raise ValueError(message)

    def check_tag(self, bad):
        if self.tag in bad:
            raise ValueError(f'member {self.tag}')
        return self.tag

    def nap_tag(self, tag, seconds):
        if self.tag == tag:
            time.sleep(seconds)
        return self.tag

    def stored(self):
        return len(mosaic.runtime().warehouse)

    def inspect_task(self, x, k=None):
        task = mosaic.current_task()
        task.add_event('inside', step=1)
        task.add_profile('profile-a', n=2)
        return dict(type=task.type, is_remote=task.is_remote, sender_id=task.sender_id,
                    tessera_id=task.tessera_id, remote_runtime=tuple(task.remote_runtime),
                    remote_cls=task.remote_cls().__name__, collectable=task.collectable,
                    args=task.args_value(), kwargs=task.kwargs_value(),
                    check=task.check_result(), events=[e[1:4] for e in task.events],
                    method=task.method, uid=task.uid, status=task.status.value)

    async def ainspect(self):
        task = mosaic.current_task()
        await task.prepare_args()           # arguments are ready: returns at once
        await asyncio.sleep(0.01)
        return task is mosaic.current_task(), task.method

    def spawn_on(self, other, seconds):
        # an actor-to-actor call nobody awaits: the head's barrier must still wait for it
        self.pending = other.nap(seconds)
        return True

    def pending_state(self):
        return self.pending.state.value

    def __call__(self, x):
        return ('called', x)


@mosaic.tessera
class Plain:
    def value(self):
        return 1


async def expect(exc_type, awaitable):
    try:
        await awaitable
    except exc_type as exc:
        return exc
    raise AssertionError(f'expected {exc_type.__name__}')


def expect_now(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type as exc:
        return exc
    raise AssertionError(f'expected {exc_type.__name__}')


async def eventually(check, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


# -- S16: TaskProxy -------------------------------------------------------------------------------


async def case_seed_task_proxy(runtime):
    s = Probe.remote()
    await s
    assert s.state == 'listening'
    array = np.arange(1000.0)
    t = s.make(array)
    assert t.type == 'task_proxy' and t.remote_cls() is mosaic.Task
    assert t.tessera_id == s.uid and t.runtime_id == s.runtime_id
    assert t.remote_runtime.uid == s.runtime_id and t.collectable is True

    slow = s.nap(0.5)
    expect_now(asyncio.InvalidStateError, slow.wait)           # not finished: does not block
    assert (await slow.init()) is slow                         # registered on its worker
    future = slow.init_future
    assert slow.init_future is future and (await future) is slow
    assert (await slow) is slow and slow.wait() is True and slow.check_result() is True

    await t
    size = await t.size()
    assert array.nbytes <= size < array.nbytes + 400, size     # pickled as it would travel
    assert await t.size(pending=True) == size                  # not fetched here yet
    assert np.array_equal(await t.result(), array)
    assert await t.size(pending=True) == 0                     # fetched: nothing pending

    t.add_event('checked', ok=1)
    t.add_profile('profile-b', x=2)
    assert [e[1:4] for e in t.events] == [('event', 'checked', {'ok': 1}),
                                          ('profile', 'profile-b', {'x': 2})]
    assert all(abs(e[0] - time.time()) < 60 for e in t.events)

    calls = []
    failing = s.fail('cb')
    failing.add_done_callback(lambda proxy: calls.append(proxy))
    await expect(ValueError, failing.done_future)
    await asyncio.sleep(0.05)
    assert calls == [failing]                                  # once, after a failure too
    expect_now(ValueError, failing.wait)
    expect_now(ValueError, failing.check_result)
    await expect(ValueError, failing.size())

    # set_result / set_exception / set_done: the runtime's own way to finish a proxy
    marked = s.nap(0.3)
    marked.set_exception(KeyError('marked'))
    expect_now(KeyError, marked.check_result)
    done_early = s.nap(0.3)
    done_early.set_done()
    assert done_early.wait() is True
    await runtime.barrier()                                    # the real completions are ignored
    expect_now(KeyError, marked.check_result)

    # deregister_runtime: this proxy gives up its hold, the result is freed on the worker
    held = s.make(np.ones(10))
    await held
    before = await s.stored().result()
    held.deregister_runtime('head')

    async def freed():
        return await s.stored().result() < before
    assert await eventually(freed)


# -- the module forwards names to the runtime, as Mosaic's does ------------------------------------


async def case_module_forwarding(runtime):
    assert mosaic.num_workers == runtime.num_workers
    assert mosaic.get_workers() == {w.uid: w for w in runtime.workers}
    assert mosaic.get_worker(runtime.workers[0].uid) is runtime.workers[0]
    assert mosaic.get_event_loop() is asyncio.get_running_loop()
    assert mosaic.logger() is runtime.logger and mosaic.is_head is True
    mosaic.logger().perf('a perf record')
    try:
        mosaic.no_such_thing
    except AttributeError as exc:
        assert 'no_such_thing' in str(exc)
    else:
        raise AssertionError('expected AttributeError')


# -- S16: the worker-side Task ----------------------------------------------------------------------


async def case_seed_worker_task(runtime):
    assert mosaic.current_task() is None                       # not inside a method
    s = Probe.remote()
    info = await s.inspect_task(5, k='v').result()
    assert info['type'] == 'task' and info['is_remote'] is True
    assert info['sender_id'] == 'head' and info['remote_runtime'] == ('head', 0, runtime.host)
    assert info['tessera_id'] == s.uid and info['remote_cls'] == 'TaskProxy'
    assert info['collectable'] is True and info['method'] == 'inspect_task'
    assert info['args'] == (5,) and info['kwargs'] == {'k': 'v'}
    assert info['check'] is False and info['status'] == 'running'     # still running
    assert info['events'] == [('event', 'inside', {'step': 1}), ('profile', 'profile-a', {'n': 2})]
    assert await s.ainspect().result() == (True, 'ainspect')           # async methods too
    # a tessera calling another: the callee's task names the worker that called
    other = Probe.remote(runtime=runtime.workers[-1])
    caller = Probe.remote(runtime=runtime.workers[0])
    await caller
    assert await caller.spawn_on(other, 0.0).result() is True


# -- S16: TaskOutputGenerator, TaskOutput, TaskDone -------------------------------------------------


async def case_seed_references(runtime):
    s = Probe.remote()
    p = s.pair()
    out, done = p.outputs[1], p.done
    for ref in (out, done, p.outputs.done):
        assert ref.uid == p.uid and ref.runtime_id == p.runtime_id
        assert ref.tessera_id == p.tessera_id
    assert (await out) is p and (await done) is p              # await: the task, as in Mosaic
    assert out.state is mosaic.TaskStatus.DONE and out.wait() is True and done.wait() is True
    assert (await out.init()) is p and (await done.init_future) is p
    assert (await out.done_future) is p
    assert await out.result() == 'b' and await p.outputs[0].result() == 1
    assert await done.result() is True and await p.outputs.done.result() is True
    assert await done.size() == 0
    assert await out.size() > 0
    assert await out.size(pending=True) == 0                   # fetched above
    seen = []
    out.add_done_callback(seen.append)
    await asyncio.sleep(0.02)
    assert seen == [p]
    # built by hand, as Mosaic's classes can be
    assert await mosaic.TaskOutputGenerator(p)[0].result() == 1
    assert await mosaic.TaskOutput(1, p).result() == 'b'
    assert await mosaic.TaskDone(p).result() is True
    failed = s.fail('upstream')
    await expect(ValueError, failed.done.result())
    await expect(ValueError, failed.outputs[0].result())
    await expect(IndexError, s.pair().outputs[5].size())


# -- TaskRemote: t.remote.<name>() runs on the result where it lives --------------------------------


class Vector:
    def __init__(self, values):
        self.values = list(values)

    def total(self, scale=1):
        return scale * sum(self.values)

    async def later(self):
        await asyncio.sleep(0.01)
        return len(self.values)


async def case_task_remote(runtime):
    s = Probe.remote()
    big = s.make(np.arange(200000.0))
    received = runtime.transport.bytes_received
    assert await big.remote.sum().result() == float(np.arange(200000.0).sum())
    assert await big.remote.reshape(1000, 200).outputs[0].size() > 0
    assert runtime.transport.bytes_received - received < 10000      # only the small answers
    vec = s.make(Vector([1, 2, 3]))
    assert await vec.remote.total(scale=2).result() == 12
    assert await vec.remote.later().result() == 3                  # coroutines are awaited
    await expect(AttributeError, vec.remote.nope().result())
    await expect(TypeError, vec.remote.values().result())
    failed = s.fail('upstream')
    await expect(mosaic.DependencyError, failed.remote.anything().result())


# -- S13: arrays of tesserae --------------------------------------------------------------------------


async def case_array_calls(runtime):
    # A call on a whole array keeps one record of its members on the head; their proxies are
    # made when looked at, their successes come back in one record per worker.
    workers = runtime.workers
    w = len(workers)
    n = 4 * w
    arr = Probe.remote(len=n)
    await arr
    await asyncio.gather(*[arr[i].set_attr('tag', i) for i in range(n)])
    tasks = arr.check_tag(())
    assert len(tasks) == n and (await tasks) is tasks
    assert await tasks.result() == list(range(n))
    assert tasks[-1] is tasks[n - 1] and tasks[1:3] == [tasks[1], tasks[2]]
    assert list(tasks) == tasks and tasks + [None] == list(tasks) + [None]
    assert all(t.state is TaskStatus.DONE for t in tasks)
    assert [await t.result() for t in tasks[::2]] == list(range(0, n, 2))
    assert await arr[0].square(tasks[3]).result() == 9          # a member's result as argument
    assert await mosaic.gather(arr.check_tag(())) is not None   # gather takes a TaskArray
    # The first failure in member order is raised; every member keeps its own outcome.
    bad = arr.check_tag((1, 3))
    error = await expect(ValueError, bad)
    assert str(error) == 'member 1', error
    assert str(await expect(ValueError, bad[3].result())) == 'member 3'
    assert await bad[2].result() == 2 and await bad[0].result() == 0
    # A member's completion is not held back by a slow member after it on the same worker
    # (members 0 and w are both on the first worker).
    slow = arr.nap_tag(w, 3.0)
    await slow[0]
    assert slow[w].state is not TaskStatus.DONE, slow[w].state
    assert await slow.result() == list(range(n))
    # ... nor while that worker's progress thread is kept busy by a stream of records.
    sink = Probe.remote(runtime=workers[0])
    await sink
    slow = arr.nap_tag(w, 3.0)
    first = slow[0]
    start = time.monotonic()
    sent = 0
    while first.state is not TaskStatus.DONE and time.monotonic() - start < 2.5:
        sink.whoami()                                           # dropped at once
        sent += 1
        await asyncio.sleep(0)
    assert slow[w].state is not TaskStatus.DONE, (slow[w].state, sent)
    assert await slow.result() == list(range(n))
    # Results are freed once the TaskArray and its members' proxies are gone.
    async def stored():
        return sum([await arr[i].stored().result() for i in range(w)])
    del tasks, bad, slow
    await asyncio.sleep(0.2)
    base = await stored()
    kept = None
    for _ in range(20):
        calls = arr.check_tag(())
        kept = calls[1]
        await calls
    del calls
    assert await eventually(lambda: _at_most(stored, base + 1)), (base,)
    assert await kept.result() == 1


async def _at_most(count, limit):
    return await count() <= limit



async def case_arrays(runtime):
    workers = runtime.workers
    n = len(workers) + 1
    arr = Probe.remote(n, len=n)
    assert (await arr) is arr
    assert arr.runtime_id == [w.uid for w in workers] + [workers[0].uid]
    assert arr.uid.startswith('array-probe-') and len(arr) == n
    assert isinstance(arr[1], mosaic.TesseraProxy) and arr[1].runtime_id == workers[1 % len(workers)].uid
    tasks = await arr.whoami()                                 # every member; the finished proxies
    assert isinstance(tasks, mosaic.TaskArray) and all(t.wait() for t in tasks)
    assert [await t.result() for t in tasks] == [w.rank for w in workers] + [workers[0].rank]
    single = arr.whoami(runtime=workers[-1])                   # the member on that worker only
    assert isinstance(single, mosaic.TaskProxy) and await single.result() == workers[-1].rank
    assert await arr.square(3, runtime=workers[0].uid).result() == 9
    expect_now(ValueError, arr.whoami, runtime='worker:99')
    if len(workers) >= 2:
        lone = Probe.remote(len=1)                             # lives on the first worker only
        error = expect_now(ValueError, lone.whoami, runtime=workers[1])
        assert 'no member' in str(error)
    assert await arr.tag == [n] * n
    await arr.set_attr('tag', 7)
    assert await arr.tag == [7] * n and await arr.get_attr('tag') == [7] * n
    called = await arr(4)                                      # __call__ on every member
    assert [await t.result() for t in called] == [('called', 4)] * n
    assert await arr(5, runtime=workers[0]).result() == ('called', 5)
    # a single tessera: p(...) calls __call__, p['name'] is p.name
    p = Probe.remote()
    assert await p(2).result() == ('called', 2)
    assert await p['whoami']().result() in [w.rank for w in workers]
    expect_now(TypeError, Plain.remote(), 1)


# -- S25: barrier --------------------------------------------------------------------------------------


async def case_barrier_covers_actor_calls(runtime):
    a = Probe.remote(runtime=runtime.workers[0])
    b = Probe.remote(runtime=runtime.workers[-1])
    assert await a.spawn_on(b, 1.5).result() is True           # b.nap(1.5) submitted by a
    if len(runtime.workers) >= 2:                  # a and b on two workers: a can answer now
        assert await a.pending_state().result() == 'pending'   # still running on b
    await runtime.barrier()
    assert await a.pending_state().result() == 'done'          # the head's barrier waited for it
    assert await b.naps == 1
    long = a.nap(1.0)
    await expect(asyncio.TimeoutError, runtime.barrier(timeout=0.1))
    await runtime.barrier()
    assert long.wait() is True


# -- S26: async_for ------------------------------------------------------------------------------------


async def case_async_for(runtime):
    workers = runtime.workers
    team = Probe.remote(len=len(workers))
    busy = {w.uid: 0 for w in workers}
    used = set()

    @runtime.async_for(range(6))
    async def loop(worker, shot):
        busy[worker.uid] += 1
        assert busy[worker.uid] == 1, 'two items on one worker at once'
        used.add(worker.uid)
        try:
            return await team.square(shot, 0.05, runtime=worker).result()
        finally:
            busy[worker.uid] -= 1

    assert await loop == [i * i for i in range(6)]             # in item order
    assert used == set(busy)                                   # every worker took items

    @runtime.async_for(range(3), 'abc', progress='always')
    async def zipped(worker, i, c):
        return f'{i}{c}'
    assert await zipped == ['0a', '1b', '2c']
    assert await mosaic.gather([team[0].square(i).result() for i in range(4)],
                               progress='always') == [0, 1, 4, 9]
    expect_now(ValueError, runtime.async_for, range(2), progress='sometimes')

    @runtime.async_for([])
    async def empty(worker, item):
        raise AssertionError('no item')
    assert await empty == []

    # an exception: raised once the running items have finished; no new item starts
    running = [0]
    finished = []

    @runtime.async_for(range(8))
    async def failing(worker, i):
        running[0] += 1
        try:
            await team.nap(0.05, runtime=worker)
            if i == 1:
                raise KeyError('item 1')
            finished.append(i)
            return i
        finally:
            running[0] -= 1
    await expect(KeyError, failing)
    assert running[0] == 0 and len(finished) < 7

    # nesting is refused with a clear error; the next loop works
    @runtime.async_for(range(2))
    async def outer(worker, i):
        @runtime.async_for(range(2))
        async def inner(w, j):
            return j
        return await inner
    error = await expect(RuntimeError, outer)
    assert 'nested' in str(error)

    # safe: an item whose worker is lost is dropped (the worker retired), the rest go on
    @runtime.async_for(range(4), safe=True)
    async def lossy(worker, i):
        if i == 0:
            raise mosaic.RuntimeDisconnectedError(f'{worker.uid} lost')
        return i
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        if len(workers) >= 2:
            assert await lossy == [1, 2, 3]
            assert any('item 0 dropped' in str(w.message) for w in caught)
        else:
            error = await expect(RuntimeError, lossy)
            assert 'no workers available' in str(error)

    @runtime.async_for(range(2), safe=False)
    async def unsafe(worker, i):
        raise mosaic.RuntimeDisconnectedError('lost')
    await expect(mosaic.RuntimeDisconnectedError, unsafe)

    @runtime.async_for(range(2), timeout=0.2)
    async def slow(worker, i):
        await asyncio.sleep(5)
    await expect(asyncio.TimeoutError, slow)

    @runtime.async_for(range(4))
    async def after(worker, i):
        return await team.square(i, runtime=worker).result()
    assert await after == [0, 1, 4, 9]

    try:
        runtime.async_for(range(2))(lambda worker, i: i)
    except TypeError:
        pass
    else:
        raise AssertionError('a plain function body should be refused')


CASES = scenarios.cases(globals())


if __name__ == '__main__':
    scenarios.run(globals())
