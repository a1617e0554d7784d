"""Scenarios run under a real mpiexec by test_runtime_mpi.py: ``python mpi_cases.py CASE``.

Every rank imports this file; rank 0 runs ``case_<CASE>(runtime)`` and prints
``CASE <name> PASSED`` when its assertions hold. Tesserae are module-level classes so workers
find them by reference.
"""

import asyncio
import os
import sys
import threading
import time

import numpy as np

import mosaic_mpi as mosaic
import scenarios
from mosaic_mpi import DependencyError, RemoteError, SerialisationError


@mosaic.tessera
class Store:
    """A tessera that records what happens to it."""

    def __init__(self, value=0, log_path=None):
        self.value = value
        self.log = []
        self.log_path = log_path

    def rank(self):
        return mosaic.runtime().rank

    def add(self, x, y=0):
        self.value += x + y
        self.log.append(x)
        return self.value

    def echo(self, *args, **kwargs):
        if kwargs:
            return args, kwargs
        return args[0] if len(args) == 1 else args

    def record(self, tag):
        self.log.append(tag)
        if self.log_path:
            with open(self.log_path, 'a') as f:
                f.write(f'{tag}\n')
        return tag

    async def arecord(self, tag, delay=0.0):
        await asyncio.sleep(delay)
        self.log.append(tag)
        return tag

    def sleep(self, seconds, tag=None):
        start = time.time()
        time.sleep(seconds)
        if tag is not None:
            self.log.append(tag)
        return start, time.time()

    def get_log(self):
        return list(self.log)

    def shapes(self, kind):
        return {'single': 7, 'one': (8,), 'two': (1, 'b'), 'dict': {'a': 1, 'b': [2]},
                'none': None}[kind]

    def fail(self, message='boom'):
        raise ValueError(message)

    def fail_base(self):
        raise Abort('a BaseException that is not an Exception')

    async def acancelled(self):
        raise asyncio.CancelledError('cancelled itself')

    async def crunch(self, seconds, piece):
        # CPU work in short pieces, yielding to the loop between them
        end, pieces = time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            stop = time.perf_counter() + piece
            while time.perf_counter() < stop:
                pass
            pieces += 1
            await asyncio.sleep(0)
        return pieces

    async def crunch_until(self, seconds, piece):
        # as crunch; also returns when it ended (wall clock, every rank on one machine)
        return await self.crunch(seconds, piece), time.time()

    def fail_unpicklable(self):
        raise UnpicklableError(threading.Lock())

    def nested_types(self, container):
        return [type(item).__name__ for item in container]

    async def nested_resolve(self, container):
        return [await item.result() for item in container]

    async def call_other(self, other, x):
        return await other.add(x).result()

    def give_back(self, proxy):
        return proxy

    def stamp(self, array=None):
        # when the call started (wall clock, every rank on one machine), and what it received
        return time.time(), None if array is None else float(array.sum())

    def call_then_block(self, other, seconds):
        # submit a call, then block this worker's loop: the call must not wait for it
        inner = other.stamp()
        time.sleep(seconds)
        self.pending = inner
        return time.time()                          # when this loop was released

    async def inner_started(self):
        started, _ = await self.pending.result()
        return started

    def apply(self, fn, x):
        return fn(x)

    def stored_results(self):
        return len(mosaic.runtime().warehouse)

    def writeable(self, array):
        return bool(array.flags.writeable), bool(array.flags.owndata or array.base is not None)

    @property
    def doubled(self):
        return 2 * self.value

    # names the runtime uses for its own objects must stay usable on user classes
    def result(self):
        return 'user result'

    def outputs(self):
        return 'user outputs'

    def remote(self):
        return 'user remote'

    def done(self):
        return 'user done'


@mosaic.tessera
class Broken:
    def __init__(self):
        raise KeyError('no such resource')

    def method(self):
        return 1


@mosaic.tessera
class Shelf:
    """Uses the warehouse from inside its methods (the worker's runtime)."""

    def rank(self):
        return mosaic.runtime().rank

    def describe(self, value, key=None):
        # top-level references arrive as their values
        return type(value).__name__, float(np.sum(value)), key

    def types(self, container):
        return [type(item).__name__ for item in container]

    async def read_nested(self, container):
        values = [await item for item in container]
        return [float(sum(np.sum(x) for x in v)) if isinstance(v, list) else float(np.sum(v))
                for v in values]

    def sum(self, value):
        return float(np.sum(value))

    def first(self, value):
        return {'value': value}

    async def put(self, value, publish=False):
        return await mosaic.runtime().put(value, publish=publish)

    async def put_many(self, values, publish=False):
        return [await mosaic.runtime().put(v, publish=publish) for v in values]

    async def round_trip(self, value):
        runtime = mosaic.runtime()
        ref = await runtime.put(value)
        a, b, c = await ref, await ref.value(), await runtime.get(ref)
        again = await runtime.put(value)
        await ref.drop()
        try:
            await ref.value()
        except KeyError:
            dropped = True
        else:
            dropped = False
        # each read is the reader's own copy, equal to the value as it was put
        own = all(x is not value and x is not a for x in (b, c)) and a is not value
        return own and all(np.array_equal(x, value) for x in (a, b, c)), \
            again.uid != ref.uid, dropped, float(np.sum(await again))

    async def read(self, refs):
        # (sum of each value, fetches sent, bytes sent by this rank while reading them)
        runtime = mosaic.runtime()
        fetches, sent = runtime.objects.fetches, runtime.transport.bytes_sent
        sums = [float(np.sum(await ref.value())) for ref in refs]
        return sums, runtime.objects.fetches - fetches, runtime.transport.bytes_sent - sent

    def holds(self, refs):
        return [mosaic.runtime().warehouse.find(ref.object_id) is not None for ref in refs]

    async def read_error(self, refs):
        out = []
        for ref in refs:
            try:
                await asyncio.wait_for(ref.value(), 10.0)
            except KeyError as exc:
                out.append(('KeyError', str(exc)))
            else:
                out.append(('value', None))
        return out

    async def drop(self, refs):
        for ref in refs:
            await mosaic.runtime().drop(ref)


class Abort(BaseException):
    pass


class UnpicklableError(Exception):
    def __init__(self, lock):
        super().__init__('carries a lock')
        self.lock = lock


class MyArray(np.ndarray):
    pass


async def expect(exc_type, awaitable):
    try:
        await awaitable
    except exc_type as exc:
        return exc
    raise AssertionError(f'expected {exc_type.__name__}')


# -- S1, S2, S4, S5 ------------------------------------------------------------------------------


async def case_runtime_object(runtime):
    assert runtime.uid == 'head'
    assert runtime is mosaic.runtime()
    assert mosaic.init() is runtime                     # init twice: the same runtime
    size = runtime.comm.Get_size()
    assert runtime.num_workers == size - 1
    assert [w.uid for w in runtime.workers] == [f'worker:{r}' for r in range(1, size)]
    assert [w.rank for w in runtime.workers] == list(range(1, size))
    assert runtime.logger.name == 'mosaic_mpi'
    ranks = await mosaic.gather([Store.remote(runtime=w).rank() for w in runtime.workers])
    assert [await t.result() for t in ranks] == list(range(1, size))


async def case_gather(runtime):
    s = Store.remote()
    values = await mosaic.gather([s.echo(i).result() for i in range(5)])
    assert values == [0, 1, 2, 3, 4]
    proxies = await mosaic.gather([s.echo(i) for i in range(3)])        # task proxies: themselves
    assert all(isinstance(p, mosaic.TaskProxy) for p in proxies)
    c = s.echo('c')
    mixed = await mosaic.gather([s.echo('a').result(), s.echo('b'), c.outputs[0]])
    assert mixed[0] == 'a' and isinstance(mixed[1], mosaic.TaskProxy) and mixed[2] is c
    try:
        await mosaic.gather([s.echo(1).result(), s.fail('in gather').result(), s.fail().result()])
    except ValueError as exc:
        assert str(exc) == 'in gather'
    else:
        raise AssertionError('gather should raise the first failure')
    assert mosaic.gather(3) == 3
    assert mosaic.gather('abc') == 'abc'


async def case_drain(runtime):
    # Calls never awaited still run, and run() waits for them before stopping (S1, S10).
    path = os.environ['CASE_LOG']
    s = Store.remote(log_path=path)
    for i in range(20):
        s.record(i)
    s.sleep(0.3, 'last')
    s.record('end')


async def case_main_raises(runtime):
    s = Store.remote()
    await s.add(1)
    raise RuntimeError('main failed on purpose')


async def case_main_exit_code(runtime):
    await Store.remote().add(1)
    sys.exit(3)


# -- S7, S8, S9 --------------------------------------------------------------------------------------


async def case_tessera_local_and_placement(runtime):
    local = Store(5)
    assert isinstance(local, Store) and local.add(1) == 6 and local.remote() == 'user remote'
    assert type(local).__name__ == 'Store'
    W = runtime.num_workers
    proxies = [Store.remote() for _ in range(2 * W)]
    assert isinstance(proxies[0], mosaic.TesseraProxy)
    assert (await proxies[0]) is proxies[0]
    ranks = [await p.rank().result() for p in proxies]
    assert ranks == [1 + i % W for i in range(2 * W)], ranks
    pinned = Store.remote(runtime=runtime.workers[-1])
    assert await pinned.rank().result() == runtime.workers[-1].rank
    assert pinned.runtime_id == runtime.workers[-1].uid
    by_uid = Store.remote(runtime=runtime.workers[0].uid)
    assert await by_uid.rank().result() == 1
    array = Store.remote(10, len=W + 1)
    assert isinstance(array, mosaic.ArrayProxy) and len(array) == W + 1
    assert (await array) is array
    assert [await array[i].rank().result() for i in range(W + 1)] == \
        [1 + i % W for i in range(W + 1)]
    assert await array.value == [10] * (W + 1)
    results = await array.add(1)
    assert [await t.result() for t in results] == [11] * (W + 1)
    only = await array.add(5, runtime=runtime.workers[0])   # the (first) member on worker 1 only
    assert isinstance(only, mosaic.TaskProxy) and await only.result() == 16
    assert await array.value == [16] + [11] * W
    try:
        Store.remote(runtime='worker:99')
    except ValueError as exc:
        assert 'worker:99' in str(exc)
    else:
        raise AssertionError('expected ValueError')
    # user methods named like runtime internals still work remotely
    s = Store.remote()
    names = [s.result(), s.outputs(), s.remote(), s.done()]
    assert [await t.result() for t in names] == ['user result', 'user outputs', 'user remote',
                                                 'user done']


async def case_constructor_raises(runtime):
    b = Broken.remote()
    exc = await expect(KeyError, b)
    assert 'no such resource' in str(exc)
    assert isinstance(exc.__cause__, mosaic.RemoteTraceback)
    assert 'Broken' in exc.__cause__.text and '__init__' in exc.__cause__.text
    exc = await expect(KeyError, b.method())
    assert 'no such resource' in str(exc)
    exc = await expect(KeyError, b.method().result())


# -- S10, S11, S12 ----------------------------------------------------------------------------------


async def case_eager_and_attributes(runtime):
    s = Store.remote(1)
    t = s.sleep(0.5)
    assert isinstance(t, mosaic.TaskProxy)
    assert t.check_result() is False                    # returned before the method ended
    await t
    assert t.check_result() is True
    assert await s.value == 1
    assert await s.get_attr('value') == 1
    assert await s.doubled == 2                         # property evaluated remotely
    await s.set_attr('value', 5)
    s.add(1)                                            # ordered with the attribute write
    assert await s.value == 6
    await expect(AttributeError, s.no_such_attribute)
    try:
        s.no_such_method()
    except AttributeError as exc:
        assert 'no_such_method' in str(exc)
    else:
        raise AssertionError('expected AttributeError at the call')


async def case_ordering(runtime):
    s = Store.remote()
    tasks = []
    for i in range(60):
        if i % 3 == 0:
            tasks.append(s.arecord(i, delay=0.002 * (i % 5)))   # async methods do not interleave
        else:
            tasks.append(s.record(i))
    await mosaic.gather(tasks)
    assert await s.get_log().result() == list(range(60))


async def case_blocked_call_holds_only_its_tessera(runtime):
    W = runtime.num_workers
    a = Store.remote(runtime=runtime.workers[0])
    b = Store.remote(runtime=runtime.workers[-1])
    c = Store.remote(runtime=runtime.workers[-1])
    slow = a.arecord('slow', delay=1.0)                 # async: the worker loop stays free
    waiting = b.record(slow.outputs.done, 'waiting')    # must wait for `slow`
    later = b.record('later')                           # held back behind it
    other = c.record('other')                           # another tessera: not held back
    assert await other.result() == 'other'
    assert waiting.check_result() is False and later.check_result() is False
    await later
    assert await waiting.result() == 'waiting'           # the TaskDone argument was removed
    assert await b.get_log().result() == ['waiting', 'later']
    # parallel: sleeps on two workers overlap in time
    if W >= 2:
        t1, t2 = a.sleep(0.5), b.sleep(0.5)
        (s1, e1), (s2, e2) = await t1.result(), await t2.result()
        assert s1 < e2 and s2 < e1


# -- S14 ---------------------------------------------------------------------------------------------


async def case_actor_to_actor(runtime):
    a = Store.remote(0)
    b = Store.remote(100)
    assert await a.call_other(b, 5).result() == 105
    assert await b.value == 105
    back = await a.give_back(b).result()
    assert isinstance(back, mosaic.TesseraProxy)
    assert await back.add(1).result() == 106


# -- S16, S17, S18 -----------------------------------------------------------------------------------


@mosaic.tessera
class Neighbour:
    """Calls a tessera on its own rank (issue 10 item 3: such calls skip MPI)."""

    def __init__(self):
        self.log = []

    def add(self, x, array=None):
        self.log.append(x)
        return 2 * x if array is None else (2 * x, array)

    def get_log(self):
        return self.log

    def slow_add(self, x, seconds):
        time.sleep(seconds)
        return self.add(x)

    def counters(self):
        transport = mosaic.runtime().transport
        return transport.packets_to_self, transport.local_packets

    async def drive(self, other, count):
        before = mosaic.runtime().transport.local_packets
        tasks = [other.add(i) for i in range(count)]
        values = [await t.result() for t in tasks]
        # a dependency produced on this rank, consumed on it
        dep = await other.add(other.add(1000)).result()
        array = np.arange(100000.0)            # out of band: a copy arrives, not ours
        doubled, got = await other.add(7, array).result()
        got[:] = -1.0
        transport = mosaic.runtime().transport
        return (values, dep, doubled, bool(np.array_equal(array, np.arange(100000.0))),
                transport.packets_to_self, transport.local_packets - before)


    async def chain(self, other, near):
        # ``t`` is this rank's call; its value is fetched by this rank as a dependency of a call
        # on ``near`` (a Value to the caller of ``t``, which then sends no Completed for it)
        t = other.slow_add(1, 0.3)             # still running when the fetch arrives
        u = near.add(t)
        doubled = await u.result()
        await t                                  # done, known from the Value alone
        return doubled, str(t.state), await t.result()


async def case_value_implies_completed(runtime):
    far = runtime.workers[-1]
    a = Neighbour.remote(runtime=runtime.workers[0])
    b = Neighbour.remote(runtime=far)
    c = Neighbour.remote(runtime=runtime.workers[0])
    doubled, state, value = await a.chain(b, c).result()
    assert doubled == 4 and value == 2 and state == str(mosaic.TaskStatus.DONE)
    tasks = [b.add(i) for i in range(20)]
    assert [await t.result() for t in tasks] == [2 * i for i in range(20)]
    for t in tasks:
        await t                                  # completion after the value: no wait
        assert t.state is mosaic.TaskStatus.DONE
    late = b.add(5)
    await late                                   # completion first (a Completed), value after
    assert await late.result() == 10
    await runtime.barrier()
    assert runtime.client.outstanding == 0


async def case_same_rank_calls_skip_mpi(runtime):
    worker = runtime.workers[0]
    a = Neighbour.remote(runtime=worker)
    b = Neighbour.remote(runtime=worker)
    values, dep, doubled, intact, to_self, local = await a.drive(b, 50).result()
    assert values == [2 * i for i in range(50)]
    assert dep == 4000 and doubled == 14 and intact
    assert await b.get_log().result() == list(range(50)) + [1000, 2000, 7]    # in order
    assert to_self == 0                    # nothing went through MPI to its own rank
    assert local >= 50                     # the calls and their answers went locally
    assert (await a.counters().result())[0] == 0
    assert runtime.transport.packets_to_self == 0


@mosaic.tessera
class SendWatch:
    """Notes, on its worker, each packet sent and whether it left while ``Worker._call`` still
    ran (``Transport.flush_now``: a reply goes out before the loop returns to its wait)."""

    def __init__(self):
        self.packets = []

    def noop(self):
        return None

    def watch(self):
        from mosaic_mpi.runtime.worker import Worker
        wire = mosaic.runtime().transport._wire
        send, call, inside, packets = wire.send, Worker._call, [False], self.packets

        def watched_call(worker, record):
            inside[0] = True
            try:
                return call(worker, record)
            finally:
                inside[0] = False

        def watched_send(dest, records):
            packets.append((tuple(type(r).__name__ for r in records), inside[0]))
            return send(dest, records)
        Worker._call = watched_call
        wire.send = watched_send

    def report(self):
        return list(self.packets)


async def case_a_loop_about_to_wait_sends_at_once(runtime):
    p = SendWatch.remote()
    await p
    await p.watch().result()
    wire = runtime.transport._wire
    send, sent = wire.send, []

    def watched_send(dest, records):
        sent.append(tuple(type(r).__name__ for r in records))
        return send(dest, records)
    wire.send = watched_send
    early = 0
    try:
        for _ in range(20):
            await p.noop().result()         # the loop spins: the progress thread stands aside
            before = len(sent)
            steps = p.noop().result().__await__()
            future = steps.send(None)       # fetch() runs up to its wait, and no further
            if sent[before:] == [('Call', 'Fetch')]:
                early += 1                  # both left before the loop reached its wait
            await asyncio.wait([future])    # (the fetch's own await still holds it)
            try:
                steps.send(None)
            except StopIteration as stop:
                assert stop.value is None
            else:
                raise AssertionError('the fetch should have returned')
        for _ in range(10):
            await p.noop()
    finally:
        wire.send = send
    assert early >= 10, f'the call and its fetch left at once in {early} of 20 round trips'
    packets = await p.report().result()
    replies = [inside for kinds, inside in packets if kinds in (('Value',), ('Completed',))]
    assert len(replies) >= 50 and sum(replies) >= len(replies) // 2, packets


async def case_task_proxy_members(runtime):
    s = Store.remote()
    t = s.add(1)
    assert t.type == 'task_proxy'
    assert t.tessera_id == s.uid
    assert t.runtime_id == s.runtime_id and t.remote_runtime.uid == s.runtime_id
    assert t.collectable is True
    assert (await t.init_future) is t
    seen = []
    t.add_done_callback(lambda proxy: seen.append(proxy))
    assert (await t) is t
    assert t.wait() is True
    assert (await t.done_future) is t
    await asyncio.sleep(0.01)
    assert seen == [t]
    assert await t.size() > 0
    assert t.state is mosaic.TaskStatus.DONE
    f = s.fail()
    await expect(ValueError, f.done_future)
    try:
        f.check_result()
    except ValueError:
        pass
    else:
        raise AssertionError('check_result should raise')


async def case_result_shapes(runtime):
    s = Store.remote()
    assert await s.shapes('single').result() == 7
    assert await s.shapes('one').result() == 8                      # 1-tuple unwrapped
    assert await s.shapes('two').result() == (1, 'b')
    assert await s.shapes('dict').result() == {'a': 1, 'b': [2]}
    assert await s.shapes('none').result() is None
    big = s.echo(np.arange(100000.0))
    first = await big.result()
    received = runtime.transport.bytes_received
    again = await big.result()
    assert again is first                                           # cached: no second transfer
    assert runtime.transport.bytes_received - received < 200       # (a heartbeat, at most)


async def case_outputs(runtime):
    s = Store.remote()
    two = s.shapes('two')
    single = s.shapes('single')
    d = s.shapes('dict')
    sent = runtime.transport.bytes_sent
    refs = [two.outputs[0], two.outputs[1], single.outputs[0], d.outputs['b'], two.outputs.done,
            two.done]
    assert runtime.transport.bytes_sent - sent < 200    # references send nothing (a heartbeat may)
    assert await two.outputs[1].result() == 'b'
    assert await single.outputs[0].result() == 7                    # non-tuple: 0 is the value
    assert await d.outputs['b'].result() == [2]
    assert await two.outputs.done.result() is True
    await expect(IndexError, single.outputs[1].result())
    await expect(KeyError, d.outputs['zz'].result())
    assert isinstance(refs[0], mosaic.TaskOutput) and isinstance(refs[4], mosaic.TaskDone)


# -- S19 ---------------------------------------------------------------------------------------------


async def case_dependencies(runtime):
    a = Store.remote(runtime=runtime.workers[0])
    b = Store.remote(runtime=runtime.workers[-1])
    # x -> y -> z on one tessera
    x = a.echo(1)
    y = a.add(x)
    z = a.add(y, y=x)
    assert await z.result() == 1 + (1 + 1)
    # a -> b -> a, values worker to worker
    t1 = a.echo(np.arange(10.0))
    t2 = b.echo(t1)
    t3 = a.echo(t2)
    assert np.array_equal(await t3.result(), np.arange(10.0))
    # one task feeding two consumers
    src = a.echo(21)
    c1, c2 = a.add(src), b.echo(src)
    assert await c2.result() == 21
    assert isinstance(await c1.result(), int)
    # keyword TaskOutput, TaskDone shifting positional arguments
    pair = b.shapes('two')
    r = a.echo(pair.outputs[0], key=pair.outputs[1])
    assert await r.result() == ((1,), {'key': 'b'})
    r = a.echo(pair.outputs.done, 'shifted')
    assert await r.result() == 'shifted'
    r = a.echo(pair.done, 'x', done=pair.done)
    assert await r.result() == 'x'
    # a task already finished and awaited can still be an input
    await pair
    assert await a.echo(pair.outputs[1]).result() == 'b'
    # constructor arguments may be dependencies too
    c = Store.remote(pair.outputs[0])
    assert await c.value == 1
    # nested references are passed as references
    inner = b.echo(5)
    assert await a.nested_types([inner, inner.outputs[0]]).result() == ['TaskProxy',
                                                                         'TaskOutput']
    assert await a.nested_resolve([inner, inner.outputs[0]]).result() == [5, 5]


async def case_worker_to_worker(runtime):
    if runtime.num_workers < 2:
        print('CASE worker_to_worker PASSED')
        return
    a = Store.remote(runtime=runtime.workers[0])
    b = Store.remote(runtime=runtime.workers[1])
    await a
    await b
    received = runtime.transport.bytes_received
    sent = runtime.transport.bytes_sent
    big = a.apply(np.ones, 4_000_000)                 # made on worker 1: 32 MB
    total = b.echo(big)
    await total
    s = b.apply(np.sum, total)
    assert await s.result() == 4_000_000.0
    assert runtime.transport.bytes_received - received < 1_000_000    # the head relayed nothing
    assert runtime.transport.bytes_sent - sent < 1_000_000


# -- S20, S22 ----------------------------------------------------------------------------------------


async def case_exceptions(runtime):
    s = Store.remote()
    f = s.fail('bad input 42')
    exc = await expect(ValueError, f)
    assert str(exc) == 'bad input 42'
    tb = exc.__cause__
    assert isinstance(tb, mosaic.RemoteTraceback)
    assert 'worker:' in tb.text and 'Store' in tb.text and 'method fail' in tb.text
    assert "raise ValueError(message)" in tb.text
    exc = await expect(ValueError, f.result())
    assert await s.add(2).result() == 2                  # the tessera keeps working
    dependent = s.add(f)
    exc = await expect(DependencyError, dependent)
    assert 'Store.fail' in str(exc) and 'ValueError' in str(exc)
    assert str(exc).startswith(f'Store.add (task {dependent.uid}) was not run'), str(exc)
    assert isinstance(exc.__cause__, ValueError) and str(exc.__cause__) == 'bad input 42'
    chained = s.add(dependent)
    exc = await expect(DependencyError, chained.result())
    assert isinstance(exc.__cause__, DependencyError)
    assert isinstance(exc.__cause__.__cause__, ValueError)
    exc = await expect(RemoteError, s.fail_unpicklable())
    assert 'UnpicklableError' in exc.type_name and 'carries a lock' in exc.message
    assert await s.add(0).result() == 2


async def case_user_errors_at_call(runtime):
    s = Store.remote()
    lock = threading.Lock()
    for call in (lambda: s.echo(1, lock), lambda: s.echo(1, key=lock)):
        try:
            call()
        except SerialisationError as exc:
            assert ('positional argument 1' in str(exc) or "keyword argument 'key'" in str(exc))
            assert 'Store.echo' in str(exc)
        else:
            raise AssertionError('expected SerialisationError at the call')
    assert await s.apply(lambda v: v * 3, 5).result() == 15            # cloudpickle fallback
    try:
        Store.remote(lock)
    except SerialisationError as exc:
        assert 'positional argument 0' in str(exc)
    else:
        raise AssertionError('expected SerialisationError')


# -- data path ---------------------------------------------------------------------------------------


def _arrays():
    rng = np.random.default_rng(0)
    out = []
    for dtype in ['bool', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64',
                  'uint64', 'float16', 'float32', 'float64', 'complex64', 'complex128', '>f8',
                  '<i4', 'datetime64[ns]', 'timedelta64[s]', 'U5', 'S3']:
        out.append((rng.random(1000) * 100).astype(dtype))
    out.append(np.zeros(3, dtype=[('x', 'f4'), ('y', 'i8', (2,))]))
    big = rng.random((300, 400))
    out += [big, np.asfortranarray(big), big[::2, ::3], big.T, big[:0], np.float64(3.5),
            np.array(7), np.empty((0, 5)), rng.random(10).view(MyArray)]
    return out


async def case_arrays_round_trip(runtime):
    s = Store.remote()
    arrays = _arrays()
    results = await mosaic.gather([s.echo(a).result() for a in arrays])
    for sent, got in zip(arrays, results):
        assert type(got) is type(sent), (type(got), type(sent))
        if isinstance(sent, np.ndarray):
            assert got.dtype == sent.dtype and got.shape == sent.shape
            if sent.flags.c_contiguous or sent.flags.f_contiguous:
                assert got.flags.c_contiguous == sent.flags.c_contiguous
                assert got.flags.f_contiguous == sent.flags.f_contiguous
            else:                                       # strided views arrive compacted
                assert got.flags.c_contiguous
            assert got.flags.writeable
            assert np.array_equal(got, sent) or np.array_equal(got.view('u1'), sent.view('u1'))
        else:
            assert got == sent
    w = await s.writeable(np.arange(200000.0)).result()
    assert w == (True, True)
    # arrays we sent are writeable again once the call is done
    a = np.arange(200000.0)
    await s.echo(a)
    a[0] = 5.0


async def case_mid_size_arguments_share_messages(runtime):
    # Buffers below 1 MiB of one packet travel side by side in shared data messages
    # (comms/wire.py, coalescing): many pipelined calls with mixed sizes, odd sizes and empty
    # arrays, next to large buffers that keep their own messages, all arrive whole, in order,
    # aligned and writeable.
    s = Store.remote()
    rng = np.random.default_rng(1)
    sizes = [65536, 65536 + 3, 0, 200000, 1 << 20, 3, 900000, (2 << 20) + 8, 70000]
    sent = [[rng.integers(0, 255, size, dtype=np.uint8) for size in sizes[i % 3:]]
            for i in range(60)]
    tasks = [s.echo(*arrays) for arrays in sent]
    for arrays, task in zip(sent, tasks):
        got = await task.result()
        assert len(got) == len(arrays)
        for a, b in zip(arrays, got):
            assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
            assert b.flags.writeable and b.ctypes.data % 16 == 0
    b[...] = 0          # a received array is the consumer's own
    assert await s.add(1).result() == 1     # calls after them still run in order


async def case_results_freed_when_no_proxy_refers(runtime):
    s = Store.remote()
    await s
    base = await s.stored_results().result()
    for i in range(300):
        await s.echo(np.ones(10000))                     # proxies dropped at once
    kept = [s.echo(i) for i in range(5)]
    producer = s.echo(7)
    consumer = s.add(producer)
    del producer                                         # the consumer still needs it
    assert await consumer.result() == 7
    await asyncio.sleep(0.2)
    left = await s.stored_results().result()
    # kept (5) + consumer + this very call; the construction and stored_results proxies too
    assert left - base <= 5 + 3, (base, left)
    assert [await t.result() for t in kept] == list(range(5))


async def case_calls_leave_while_their_caller_blocks(runtime):
    # A busy event loop sends its calls when it next waits; one that blocks in synchronous code
    # right after a call instead must not hold the call back (the progress thread takes over):
    # the call starts on its worker while the caller is still blocked.
    s = Store.remote(runtime=runtime.workers[0])
    b = Store.remote(runtime=runtime.workers[-1])
    await s
    await b
    for _ in range(50):                                  # busy: the loops drive the transport
        await s.echo(0).result()
    t = s.stamp()
    time.sleep(2.0)                                      # the head's loop is blocked
    released = time.time()
    started, _ = await t.result()
    assert started < released, (started, released)
    # a large argument: its transfer needs progress on both ranks while the head blocks
    array = np.ones(4 << 20)
    t = s.stamp(array)
    time.sleep(2.0)
    released = time.time()
    started, total = await t.result()
    assert started < released and total == array.size, (started, released, total)
    if runtime.num_workers < 2:
        return          # (tesserae on one worker share its thread: the inner call must wait)
    # on a worker: a method calls a tessera on another worker, then blocks its loop
    released = await s.call_then_block(b, 2.0).result()
    started = await s.inner_started().result()
    assert started < released, (started, released)


async def case_many_freed_results_are_dropped(runtime):
    # Frees travel in batches (at idle, after 10 ms, or 1024 at a time): all of them arrive.
    s = Store.remote()
    await s
    base = await s.stored_results().result()
    tasks = [s.echo(i) for i in range(3000)]
    assert (await mosaic.gather([t.result() for t in tasks]))[-1] == 2999
    busy = await s.stored_results().result()
    assert busy - base >= 3000, (base, busy)
    del tasks
    await asyncio.sleep(0.2)
    left = await s.stored_results().result()
    assert left - base <= 3, (base, left)


async def case_methods_ending_in_base_exceptions_fail_their_call(runtime):
    s = Store.remote()
    await s
    error = await expect(Abort, s.fail_base().result())
    assert 'not an Exception' in str(error)
    await expect(asyncio.CancelledError, s.acancelled())
    assert await s.add(1).result() == 1                  # the tessera goes on


async def case_no_stall_while_a_loop_computes_in_short_pieces(runtime):
    # A loop that yields more often than every 5 ms can starve the rank's progress thread of the
    # GIL (CPython's hand-over rule); the loop itself then keeps MPI going. Round trips took
    # seconds each before: the 20 round trips must all end while the loop is still computing
    # (for 6 s; ~3 ms each when nothing stalls).
    s = Store.remote(runtime=runtime.workers[0])
    await s

    async def crunch(seconds):
        end, pieces = time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            stop = time.perf_counter() + 0.001
            while time.perf_counter() < stop:
                pass
            pieces += 1
            await asyncio.sleep(0)
        return pieces

    background = asyncio.ensure_future(crunch(6.0))
    for i in range(20):
        assert await s.echo(i).result() == i
    assert not background.done()
    assert await background > 0
    # the same on a worker: an async method computing in pieces, calls to its neighbour
    neighbour = Store.remote(runtime=runtime.workers[0])
    await neighbour
    crunching = s.crunch_until(6.0, 0.001)
    for i in range(10):
        assert await neighbour.echo(i).result() == i
    echoed = time.time()
    pieces, ended = await crunching.result()
    assert pieces > 0 and echoed < ended, (pieces, echoed, ended)


async def case_barrier(runtime):
    stores = [Store.remote() for _ in range(3)]
    tasks = [s.sleep(0.05 * (i + 1)) for i, s in enumerate(stores)]    # never awaited
    assert not any(t.check_result() for t in tasks)
    await runtime.barrier()                             # every task submitted so far has finished
    assert all(t.check_result() for t in tasks)


# -- S24: the warehouse ------------------------------------------------------------------------------


async def _shelves(runtime):
    shelves = [Shelf.remote(runtime=w) for w in runtime.workers]
    await mosaic.gather(shelves)
    return shelves


async def case_warehouse_put_get(runtime):
    shelves = await _shelves(runtime)
    a = np.arange(300_000.0)
    ref = await runtime.put(a)
    assert isinstance(ref, mosaic.WarehouseObject)
    assert ref.uid.startswith('ware-ndarray-') and len(ref.uid) == len('ware-ndarray-') + 32
    assert ref.warehouse_id == 'head' and ref.state is mosaic.TaskStatus.DONE and not ref.published
    fetches = runtime.objects.fetches
    reads = [await ref, await ref.value(), await runtime.get(ref), await ref.result(),
             await runtime.get(ref.uid)]
    assert all(np.array_equal(r, a) for r in reads)
    assert len({id(r) for r in reads} | {id(a)}) == 6             # each reader's own copy
    assert runtime.objects.fetches == fetches                   # the head owns it: local reads
    ref2 = await runtime.put(a)
    assert ref2.uid != ref.uid and ref2 != ref                  # two puts, two entries
    d = {'x': 1, 'y': [2, 3]}
    dref = await runtime.put(d)
    one = await runtime.put((5,))
    total = float(a.sum())
    for shelf in shelves:
        # top level (positional and keyword) -> the value; nested -> a reference
        assert await shelf.describe(ref, key=dref).result() == ('ndarray', total, d)
        assert await shelf.first(one).result() == {'value': (5,)}   # stored as is: not unwrapped
        assert await shelf.types([ref, dref]).result() == ['WarehouseObject'] * 2
        assert await shelf.read_nested([ref, ref2]).result() == [total, total]
        sums, fetched, _ = await shelf.read([ref, ref2]).result()
        assert sums == [total, total] and fetched == 2          # not published: fetched
    # a value put on a worker, read from the head and by another worker (worker to worker)
    big = 4_000_000
    wref = await shelves[0].put(np.ones(big)).result()
    assert wref.warehouse_id == 'worker:1' and wref.owner == 1
    fetches = runtime.objects.fetches
    assert float((await wref).sum()) == big
    assert runtime.objects.fetches == fetches + 1
    if runtime.num_workers >= 2:
        received, sent = runtime.transport.bytes_received, runtime.transport.bytes_sent
        assert await shelves[1].sum(wref).result() == big
        assert await shelves[1].read_nested([wref]).result() == [big]
        assert runtime.transport.bytes_received - received < 1_000_000   # the head relayed nothing
        assert runtime.transport.bytes_sent - sent < 1_000_000


async def case_warehouse_in_a_method(runtime):
    shelves = await _shelves(runtime)
    for shelf in shelves:
        same, distinct, dropped, again = await shelf.round_trip(np.ones(1000)).result()
        assert same and distinct and dropped and again == 1000.0
    refs = await shelves[0].put_many([np.full(200_000, 3.0), {'k': 'v'}]).result()
    assert [r.warehouse_id for r in refs] == ['worker:1', 'worker:1']
    assert float(np.sum(await refs[0])) == 600_000.0 and (await refs[1]) == {'k': 'v'}
    assert await shelves[-1].describe(refs[0], key=refs[1]).result() == \
        ('ndarray', 600_000.0, {'k': 'v'})


async def case_warehouse_publish(runtime):
    shelves = await _shelves(runtime)
    rng = np.random.default_rng(1)
    a = rng.random(1 << 20)                                 # 8 MiB
    total = float(a.sum())
    sent, broadcast = runtime.transport.bytes_sent, runtime.transport.bytes_broadcast
    pref = await runtime.put(a, publish=True)
    assert pref.published
    assert runtime.transport.bytes_sent - sent < 100_000    # the data went by broadcast
    assert runtime.transport.bytes_broadcast - broadcast == a.nbytes
    for shelf in shelves:                                   # every worker reads its own copy
        sums, fetched, sent_there = await shelf.read([pref]).result()
        # nothing fetched: at most a heartbeat (27 bytes) left that rank meanwhile
        assert sums == [total] and fetched == 0 and sent_there < 200, (sums, fetched, sent_there)
        assert await shelf.holds([pref]).result() == [True]
        assert await shelf.sum(pref).result() == total      # as an argument: read locally too
    # several buffers (several broadcasts), and a value without out-of-band buffers
    multi = [np.ones(100_000), np.zeros(300_000), np.full(50_000, 2.0)]
    mref = await runtime.put(multi, publish=True)
    sref = await runtime.put({'small': 1}, publish=True)
    for shelf in shelves:
        assert await shelf.read_nested([mref]).result() == [200_000.0]
        assert await shelf.holds([mref, sref]).result() == [True, True]
        assert await shelf.first(sref).result() == {'value': {'small': 1}}
    # published from a worker: the head and the other workers hold a copy
    wref = await shelves[-1].put(np.full(500_000, 2.0), publish=True).result()
    assert wref.published and wref.owner == runtime.workers[-1].rank
    fetches = runtime.objects.fetches
    assert float((await wref).sum()) == 1_000_000.0
    assert runtime.objects.fetches == fetches               # local on the head
    for shelf in shelves:
        sums, fetched, _ = await shelf.read([wref]).result()
        assert sums == [1_000_000.0] and fetched == 0
    # publishes from the head and from every worker at once: each rank posts the broadcasts in
    # the head's order; every value is then everywhere
    values = [np.full(100_000 + i, float(i)) for i in range(12)]
    head_puts = [asyncio.ensure_future(runtime.put(v, publish=True)) for v in values[:4]]
    worker_puts = [s.put_many(values[4 + 2 * i: 6 + 2 * i], publish=True)
                   for i, s in enumerate(shelves)]
    refs = list(await asyncio.gather(*head_puts))
    for t in worker_puts:
        refs += await t.result()
    expected = [float(v.sum()) for v in values[:len(refs)]]
    for shelf in shelves:
        sums, fetched, _ = await shelf.read(refs).result()
        assert sums == expected and fetched == 0, (sums, expected, fetched)
    fetches = runtime.objects.fetches
    assert [float(np.sum(await r)) for r in refs] == expected
    assert runtime.objects.fetches == fetches


async def case_warehouse_drop(runtime):
    shelves = await _shelves(runtime)
    # dropped on the head: KeyError at once on the head, on workers, and as a call argument
    ref = await runtime.put(np.ones(200_000))
    assert await shelves[0].sum(ref).result() == 200_000.0
    await ref.drop()
    for read in (ref.value(), runtime.get(ref), ref.result(), runtime.get(ref.uid)):
        exc = await expect(KeyError, asyncio.wait_for(read, 10.0))
        assert 'was dropped' in str(exc), exc
    await expect(KeyError, asyncio.wait_for(_await(ref), 10.0))
    for shelf in shelves:
        assert [k for k, _ in await shelf.read_error([ref]).result()] == ['KeyError']
        exc = await expect(DependencyError, shelf.sum(ref).result())
        assert isinstance(exc.__cause__, KeyError) and ref.uid in str(exc)
    await ref.drop()                                        # dropping twice is harmless
    # Mosaic's keywords: cache_only (there is no cache: nothing happens), cache, propagate
    kept = await runtime.put(np.ones(7), publish=True)
    await runtime.drop(kept, cache_only=True)
    assert float(np.sum(await runtime.get(kept, cache=False))) == 7.0
    assert [await s.holds([kept]).result() for s in shelves] == [[True]] * len(shelves)
    await runtime.drop(kept, propagate=True)
    await expect(KeyError, asyncio.wait_for(runtime.get(kept), 10.0))
    # published, dropped: every copy goes
    pref = await runtime.put(np.ones(300_000), publish=True)
    assert [await s.holds([pref]).result() for s in shelves] == [[True]] * len(shelves)
    await runtime.drop(pref)
    assert [await s.holds([pref]).result() for s in shelves] == [[False]] * len(shelves)
    for shelf in shelves:
        assert [k for k, _ in await shelf.read_error([pref]).result()] == ['KeyError']
    # dropped by a worker: its owner (the head) and the others forget it
    qref = await runtime.put(np.ones(10), publish=True)
    await shelves[-1].drop([qref]).result()
    await expect(KeyError, asyncio.wait_for(qref.value(), 10.0))
    for shelf in shelves:
        assert [k for k, _ in await shelf.read_error([qref]).result()] == ['KeyError']
    # a worker's value, dropped from the head
    wref = await shelves[0].put(np.ones(10)).result()
    await wref.drop()
    await expect(KeyError, asyncio.wait_for(wref.value(), 10.0))
    # ids the owner never had: its answer is KeyError, not a wait (the reader has no tombstone)
    from mosaic_mpi.messages import make_id
    unknown_head = mosaic.WarehouseObject(make_id(0, 10 ** 9), 'int')
    unknown_worker = mosaic.WarehouseObject(make_id(1, 10 ** 9), 'int')
    exc = await expect(KeyError, asyncio.wait_for(unknown_worker.value(), 10.0))
    assert 'worker:1' in str(exc) and 'not in the warehouse' in str(exc)
    exc = await expect(KeyError, asyncio.wait_for(unknown_head.value(), 10.0))
    assert 'not in the warehouse of head' in str(exc)
    for shelf in shelves:
        out = await shelf.read_error([unknown_head, unknown_worker]).result()
        assert [k for k, _ in out] == ['KeyError', 'KeyError'], out
    # bad references: clear errors at the call
    await expect(TypeError, runtime.get(42))
    await expect(ValueError, runtime.get('ware-int-xyz'))
    exc = await expect(ValueError, runtime.get(mosaic.WarehouseObject(make_id(99, 1), 'int')))
    assert 'rank 99' in str(exc)


async def _await(awaitable):
    return await awaitable



@mosaic.tessera
class ArrayMember:
    """Member of the array-call case: keeps what it was called with."""

    def __init__(self):
        self.seen = []

    def put(self, values):
        values[0] += 1              # in place: each member must have its own copy
        return float(values[0])

    def log(self, value):
        self.seen.append(value)
        return value

    def get(self):
        return list(self.seen)

    def fail_if_seen(self, value):
        if value in self.seen:
            raise ValueError(f'{value!r} seen')
        return 0

    def ask(self, other):
        return await_other(other)


def await_other(other):
    return other.uid


async def case_array_calls(runtime):
    from mosaic_mpi.messages import Call, CallArray
    workers = runtime.num_workers
    arr = ArrayMember.remote(len=3 * workers)
    await arr
    transport = runtime.client._transport
    sent = []
    send = transport.send
    transport.send = lambda dest, record: (sent.append(record.__class__), send(dest, record))
    try:
        tasks = arr.put(np.zeros(20000))         # out of band (> 64 kB): copied per member
    finally:
        transport.send = send
    assert sent.count(CallArray) == workers and Call not in sent, sent
    got = await tasks.result()
    assert got == [1.0] * len(arr), got
    small = arr.put([0])
    assert await small.result() == [1.0] * len(arr)
    # order with single calls on the same members
    first = arr[0]
    first.log('a')
    arr.log('b')
    first.log('c')
    assert await first.get().result() == ['a', 'b', 'c']
    # a failure in one member only
    results = arr.log(7)
    one = arr.fail_if_seen('a')                 # only member 0 has seen it
    assert 'seen' in str(await expect(ValueError, one[0].result()))
    for task in one[1:]:
        assert await task.result() == 0
    # dependencies: on another task, and an array result used by a single call
    dep = arr[1].log(5)
    assert await arr.log(dep).result() == [5] * len(arr)
    assert await arr[0].log(results[-1]).result() == 7
    # runtime= selection calls the one member there
    assert await arr.log(9, runtime=runtime.workers[-1]).result() == 9
    # a proxy in the arguments of an array call stays usable (counted once per member)
    other = ArrayMember.remote()
    await other
    assert await arr.ask(other).result() == [other.uid] * len(arr)
    import gc
    gc.collect()
    await asyncio.sleep(0.2)
    assert await other.log(3).result() == 3

CASES = scenarios.cases(globals())


if __name__ == '__main__':
    scenarios.run(globals())
