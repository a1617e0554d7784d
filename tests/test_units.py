"""Pure parts of mosaic_mpi, without MPI: serialisation, config, selection, errors, API surface."""

import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest

import mosaic_mpi
from mosaic_mpi import compact, messages
from mosaic_mpi.config import make_config
from mosaic_mpi.core.task import Task, TaskStatus
from mosaic_mpi.errors import DependencyError, RemoteError, RemoteTraceback, SerialisationError
from mosaic_mpi.messages import Select, make_id, id_rank
from mosaic_mpi.runtime.failures import pack_error, unpack_error
from mosaic_mpi.runtime.warehouse import Entry, Warehouse, select
from mosaic_mpi.serialisation import NO_ARGUMENTS, Payload, dumps, loads


def _wire(payload):
    """What the receiving rank gets: copies of the buffers in fresh uint8 arrays."""
    received = [np.frombuffer(pickle.PickleBuffer(b).raw(), np.uint8).copy()
                for b in payload.buffers]
    return Payload(payload.data, received)


@pytest.mark.parametrize('array', [np.arange(100000.0), np.asfortranarray(np.ones((300, 200))),
                                   np.arange(10), np.zeros(0), np.arange(60000).reshape(200, 300)[:, ::2],
                                   np.arange(20000, dtype='>i4')])
def test_arrays_round_trip_out_of_band(array):
    payload = dumps(array, threshold=1024)
    got = loads(_wire(payload))
    payload.release()
    assert got.dtype == array.dtype and got.shape == array.shape
    assert np.array_equal(got, array)
    assert got.flags.writeable
    if array.nbytes >= 1024 and (array.flags.c_contiguous or array.flags.f_contiguous):
        assert len(payload.buffers) == 1 and len(payload.data) < 1024      # zero-copy path
        assert got.flags.f_contiguous == array.flags.f_contiguous


def test_locked_arrays_inside_a_header_arrive_without_a_copy():
    # The transport pickles records holding payloads; buffers locked read-only on the sender must
    # still be rebuilt on the receiver's own writeable buffer, not copied.
    array = np.ones(1 << 20)
    payload = dumps(((array,), {}))
    body, oob, held = messages.pack([messages.Value(7, True, payload)])
    assert len(oob) == 1 and len(body) < 1000 and held == [payload]
    received = [np.frombuffer(pickle.PickleBuffer(b).raw(), np.uint8).copy() for b in oob]
    (record,) = messages.unpack(body, received)
    (arg,), _ = loads(record.payload)
    payload.release()
    assert np.shares_memory(arg, received[0]) and arg.flags.writeable
    assert np.array_equal(arg, array)


def test_every_record_crosses_the_wire_form_unchanged():
    # The wire form is hand-written per record type: every field must come back, selectors of
    # every kind (Select members, and output keys that look like them) included.
    M = messages
    array = np.arange(50000.0)
    big = dumps(((array,), {}))
    small = dumps(((1, 'two'), {'three': 3.0}), lock=False)
    deps = (M.Dependency(0, 11, 1, M.Select.WHOLE, 'a.f (task 11)'),
            M.Dependency('key', 12, 2, 'whole', 'b.g (task 12)'),
            M.Dependency(2, 13, 1, -1, 'c.h (task 13)'),
            M.Dependency(3, 14, 2, M.Select.DONE, 'd.i (task 14)'))
    records = [M.CreateTessera(1, 2, 0, 'Solver', (small, big), deps),
               M.Call(3, 2, 0, M.Op.GETATTR, 'x', small, ()),
               M.Call(4, 2, 1, M.Op.CALL, 'solve', big, deps[1:3]),
               M.Completed(5, None), M.Completed(6, small),
               M.Fetch(7, 5, M.Select.WHOLE, 0), M.Fetch(8, 5, 'done', 2), M.Fetch(9, 5, (1, 2), 2),
               M.Value(10, True, big), M.Value(11, False, small),
               M.Drop((1, 2), (3,)), M.Stop(3, now=True), M.Stopped(2),
               M.Query(12, 5, M.Ask.SIZE, 'whole', 1), M.Query(13, 0, M.Ask.BARRIER, M.Select.WHOLE, 0)]
    body, oob, held = M.pack(records)
    assert len(oob) == 3 and held == [big, big, big]
    received = [np.frombuffer(pickle.PickleBuffer(b).raw(), np.uint8).copy() for b in oob]
    back = M.unpack(body, received)
    assert [type(r) for r in back] == [type(r) for r in records]
    for got, sent in zip(back, records):
        for g, s in zip(got, sent):
            if isinstance(s, Payload):
                assert g.data == s.data and len(g.buffers) == len(s.buffers)
            elif isinstance(s, tuple) and s and isinstance(s[0], Payload):
                assert [p.data for p in g] == [p.data for p in s]
            else:
                assert g == s and type(g) is type(s)
    assert back[1].op is M.Op.GETATTR and back[0].deps[3].selector is M.Select.DONE
    assert back[-2].kind is M.Ask.SIZE and back[-1].selector is M.Select.WHOLE
    assert back[6].selector == 'done' and back[0].deps[1].selector == 'whole'
    (got,), _ = loads(back[8].payload)
    assert np.array_equal(got, array)
    big.release()


def test_round_trip_records_use_the_compact_form_and_come_back_unchanged():
    # Calls without dependencies or buffers, their fetches, values and plain completions travel
    # in mosaic_mpi.compact's struct form; one record that needs more sends the whole packet
    # pickled, and both forms give the same records back.
    M = messages
    small = dumps(((1, 'two'), {'three': 3.0}), lock=False)
    error = dumps(ValueError('no'), lock=False)
    records = [M.Call(M.make_id(0, 5), M.make_id(1, 3), 0, M.Op.CALL, 'noop', NO_ARGUMENTS, ()),
               M.Call(7, 3, 2, M.Op.SETATTR, 'ünïcode_näme', small, (), 5),
               M.Call(8, 3, 1, M.Op.GETATTR, 'x', small, (), -1),
               M.Fetch(9, 5, M.Select.WHOLE, 0), M.Fetch(10, 5, M.Select.DONE, 3),
               M.Value(11, True, dumps(None)), M.Value(12, False, error), M.Completed(13, None)]
    body, oob, held = M.pack(records)
    assert body[0] == compact.MARK and oob == [] and held == []
    for form, extra in (('compact', []), ('pickled', [M.Fetch(14, 5, 'whole', 0)]),
                        ('pickled', [M.Completed(15, error)])):
        body, oob, held = M.pack(records + extra)
        assert (body[0] == compact.MARK) == (form == 'compact')
        back = M.unpack(memoryview(bytearray(body)), [])
        assert [type(r) for r in back] == [type(r) for r in records + extra]
        for got, sent in zip(back, records + extra):
            for g, s in zip(got, sent):
                if isinstance(s, Payload):
                    assert g.data == s.data and g.buffers == () and type(g.data) is bytes
                else:
                    assert g == s and type(g) is type(s)
        assert back[0].op is M.Op.CALL and back[4].selector is M.Select.DONE
        assert loads(back[1].payload) == ((1, 'two'), {'three': 3.0})
        assert loads(back[5].payload) is None and back[6].ok is False
    # A call with a dependency or an out-of-band buffer is pickled (its extra fields travel).
    dep = M.Dependency(0, 11, 1, M.Select.WHOLE, 'a.f (task 11)')
    assert M.pack([M.Call(3, 2, 0, M.Op.CALL, 'f', small, (dep,))])[0][0] != compact.MARK
    big = dumps(((np.arange(50000.0),), {}))
    body, oob, _ = M.pack([M.Value(4, True, big)])
    assert body[0] != compact.MARK and len(oob) == 1
    big.release()
    with pytest.raises(ValueError, match='not a compact packet'):
        compact.unpack(bytes([compact.MARK, 99]))


def test_sent_arrays_are_read_only_until_released():
    array = np.arange(100000.0)
    first = dumps(array)
    second = dumps(array)
    with pytest.raises(ValueError, match='read-only'):
        array[0] = 1.0
    first.release()
    with pytest.raises(ValueError, match='read-only'):
        array[0] = 1.0
    second.release()
    array[0] = 1.0
    fortran = np.asfortranarray(np.ones((300, 300)))
    payload = dumps(fortran)
    with pytest.raises(ValueError):
        fortran[0, 0] = 2.0
    payload.release()
    fortran[0, 0] = 2.0
    assert fortran[0, 0] == 2.0


def test_cloudpickle_fallback_and_clear_error():
    square = loads(_wire(dumps(lambda x: x * x)))
    assert square(7) == 49
    with pytest.raises(SerialisationError, match='cannot pickle'):
        dumps(threading.Lock())


def test_config_precedence_and_unknown_keys(monkeypatch):
    monkeypatch.setenv('MOSAIC_MPI_OOB_THRESHOLD', '123')
    monkeypatch.setenv('MOSAIC_MPI_WORKER_EXIT', 'no')
    config = make_config()
    assert config.oob_threshold == 123 and config.worker_exit is False
    assert make_config(oob_threshold=7).oob_threshold == 7
    with pytest.raises(TypeError, match='bogus_key'):
        make_config(bogus_key=1)
    with pytest.raises(ValueError):
        make_config(max_chunk=2 ** 31)
    monkeypatch.setenv('MOSAIC_MPI_WORKER_EXIT', 'maybe')
    with pytest.raises(ValueError, match='boolean'):
        make_config()


def test_select_outputs():
    assert select((5,), Select.WHOLE) == 5
    assert select((1, 2), Select.WHOLE) == (1, 2)
    assert select((1, 2), 1) == 2
    assert select(np.float64(3), 0) == 3
    assert select({'a': 1}, 'a') == 1
    assert select((1, 2), Select.DONE) is None
    with pytest.raises(IndexError):
        select(7, 1)
    with pytest.raises(KeyError):
        select({'a': 1}, 'b')
    assert Select.WHOLE != 0                       # never confused with output 0


def test_warehouse_waiters_run_once_value_arrives():
    warehouse = Warehouse()
    seen = []
    warehouse.subscribe(1, seen.append)
    assert seen == []
    warehouse.put(1, Entry(True, 'v', None))
    warehouse.subscribe(1, seen.append)
    assert [e.value for e in seen] == ['v', 'v']
    warehouse.drop([1, 99])
    assert 1 not in warehouse and len(warehouse) == 0


def test_errors_keep_type_message_and_chain():
    try:
        raise ValueError('bad')
    except ValueError as exc:
        packed = pack_error(exc, 'Remote traceback (worker:1, tessera T(1), method m):')
    rebuilt = unpack_error(packed)
    assert type(rebuilt) is ValueError and str(rebuilt) == 'bad'
    assert isinstance(rebuilt.__cause__, RemoteTraceback)
    assert 'method m' in rebuilt.__cause__.text and "raise ValueError('bad')" in rebuilt.__cause__.text
    dependent = DependencyError('not run')
    dependent.__cause__ = rebuilt
    again = unpack_error(pack_error(dependent, ''))
    assert isinstance(again, DependencyError) and isinstance(again.__cause__, ValueError)
    assert 'method m' in again.__cause__.__cause__.text

    class Unpicklable(Exception):
        def __init__(self):
            super().__init__('holds a lock')
            self.lock = threading.Lock()
    try:
        raise Unpicklable()
    except Unpicklable as exc:
        remote = unpack_error(pack_error(exc, 'here'))
    assert isinstance(remote, RemoteError) and 'Unpicklable' in remote.type_name
    assert remote.message == 'holds a lock' and 'here' in remote.traceback


def test_worker_side_task_fills_and_removes_slots():
    ready = []
    task = Task(make_id(0, 5), make_id(0, 1), 0, 'solve', local_rank=1)
    assert task.type == 'task' and task.is_remote and task.sender_id == 'head'
    assert id_rank(task.uid) == 0
    task.set_arguments(['x', None, None], {'k': None}, 3, ready.append)
    task.fill(1, 'value')
    task.fill(2, None, remove=True)
    assert not task.ready
    task.fill('k', 42)
    assert task.ready and ready == [task]
    assert task.args_value() == ('x', 'value') and task.kwargs_value() == {'k': 42}
    finished = []
    task.set_finish_callback(lambda t, v, e: finished.append((v, e)))
    task.add_event('started')
    task.set_result(3)
    assert task.check_result() is True and finished == [(3, None)]
    assert task.status is TaskStatus.DONE and task.events[-1][1:3] == ('event', 'started')


def test_worker_side_task_outcomes_and_waiting():
    import asyncio
    from mosaic_mpi.core.task import TaskProxy
    task = Task(make_id(0, 6), make_id(0, 1), 2, 'solve', local_rank=1)
    assert task.sender_id == 'worker:2' and task.remote_cls() is TaskProxy
    assert task.check_result() is False                     # pending
    task.set_arguments([None], {}, 1, None)

    async def waits():
        waiting = asyncio.ensure_future(task.prepare_args())
        await asyncio.sleep(0)
        assert not waiting.done()
        task.fill(0, 'arrived')
        await waiting
        return task.args_value()
    assert asyncio.run(waits()) == ('arrived',)
    finished = []
    task.set_finish_callback(lambda t, v, e: finished.append((v, e)))
    error = ValueError('no')
    task.set_exception(error)
    assert finished == [(None, error)] and task.status is TaskStatus.FAILED
    with pytest.raises(ValueError):
        task.check_result()
    other = Task(make_id(0, 7), make_id(0, 1), 0, 'solve', local_rank=1)
    other.set_finish_callback(lambda t, v, e: finished.append((v, e)))
    other.set_done()
    assert finished[-1] == (None, None) and other.check_result() is True
    other.add_profile('p', n=1)
    assert other.profile == [other.events[-1]] and other.events[-1][1:] == ('profile', 'p', {'n': 1})


def test_tessera_class_stays_a_plain_local_class():
    class Counter:
        def __init__(self, n=0):
            self.n = n

        def remote(self):                      # a name the runtime also uses
            return 'mine'

    before = dict(vars(Counter))
    Tessera = mosaic_mpi.tessera(Counter)
    assert dict(vars(Counter)) == before       # nothing injected into the user's class
    c = Tessera(2)
    assert type(c) is Counter and isinstance(c, Tessera) and c.n == 2
    assert c.remote() == 'mine'

    class Sub(Tessera):
        pass
    assert Sub(3).n == 3 and issubclass(Sub, Tessera)
    with pytest.raises(mosaic_mpi.RuntimeNotRunning):
        Tessera.remote()
    with pytest.raises(TypeError):
        mosaic_mpi.tessera(lambda: 1)


def test_public_api_list_is_honest():
    for name in mosaic_mpi.__all__:
        assert hasattr(mosaic_mpi, name), name
    public = {n for n in dir(mosaic_mpi) if not n.startswith('_')}
    modules = {'api', 'cli', 'comms', 'compact', 'config', 'context', 'core', 'errors', 'logs',
               'messages', 'progress', 'runtime', 'serialisation', 'startup', 'trace'}
    assert public - set(mosaic_mpi.__all__) - modules == set()


def test_logger_has_mosaics_levels_and_works_without_a_runtime(caplog):
    log = mosaic_mpi.logger()
    with caplog.at_level(5, logger='mosaic_mpi'):
        log.perf('figure %d', 3)
        log.warn('careful')
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [('PERF', 'figure 3'),
                                                                      ('WARNING', 'careful')]
    with pytest.raises(AttributeError, match='no runtime is running'):
        mosaic_mpi.num_workers


def test_importing_does_not_start_mpi():
    code = 'import sys, mosaic_mpi; print("mpi4py.MPI" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == 'False', out.stderr


def test_gather_passes_non_lists_through():
    assert mosaic_mpi.gather(5) == 5
    assert mosaic_mpi.gather([1, 2]) == [1, 2]


def test_buffer_pool_reuses_freed_buffers_only():
    from mosaic_mpi.comms.pool import BufferPool
    pool = BufferPool(max_bytes=8 << 20, min_size=1 << 20)
    target, lent = pool.take(100)
    assert target is lent and target.nbytes == 100 and pool.idle_bytes == 0   # small: np.empty
    target, lent = pool.take(3 << 20)
    address = target.__array_interface__['data'][0]
    target[:8] = 1
    payload = pickle.dumps(np.arange(3 << 17, dtype=np.float64), protocol=5,
                           buffer_callback=lambda b: False)
    user = pickle.loads(payload, buffers=[lent])                  # what unpickling builds
    assert np.shares_memory(user, target) and user.flags.writeable
    del target, lent
    assert pool.idle_bytes == 0                                   # still in use by `user`
    view = user[10:20]
    del user
    assert pool.idle_bytes == 0                                   # a view of it too
    del view
    assert pool.idle_bytes == 3 << 20
    again, lent = pool.take((3 << 20) - 5)                        # same 1 MiB size class
    assert again.__array_interface__['data'][0] == address and pool.idle_bytes == 0
    del again, lent
    held = [pool.take(5 << 20) for _ in range(2)]
    del held
    assert pool.idle_bytes <= 8 << 20                             # capped


def test_results_are_stored_as_produced_and_handed_out_as_copies():
    from mosaic_mpi.runtime.ownership import private, snapshot

    class Holder:
        def __init__(self):
            self.total = np.ones(4)
            self.items = [1]

    holder = Holder()

    def stored(make):
        value = make()
        ident = id(value)
        value = snapshot(value)
        return value, id(value) == ident

    for make, kept in [(lambda: holder.total * 2, True), (lambda: holder.total, False),
                       (lambda: holder.total[1:], False), (lambda: np.ones(5)[1:], True),
                       (lambda: (holder.total, 1), False), (lambda: (np.ones(3), 'a'), True),
                       (lambda: holder.items, False), (lambda: {'a': np.zeros(2)}, True),
                       (lambda: {'a': holder.total}, False), (lambda: 7, True)]:
        value, same = stored(make)
        assert same is kept, make
    value, _ = stored(lambda: holder.total)
    holder.total += 1
    assert np.array_equal(value, np.ones(4))               # the stored copy did not move
    array = np.arange(6.0).reshape(2, 3, order='F')
    copy = private(array)
    assert copy is not array and np.array_equal(copy, array) and copy.flags.f_contiguous
    nested = {'x': [np.zeros(2)]}
    assert private(nested)['x'][0] is not nested['x'][0]
    assert private((1, 'a')) == (1, 'a') and private(None) is None


def test_readme_configuration_table_lists_every_key():
    import dataclasses
    from pathlib import Path
    from mosaic_mpi.config import Config
    text = (Path(__file__).resolve().parents[1] / 'README.md').read_text()
    table = text[text.index('## Configuration'):text.index('## Layout')]
    for field in dataclasses.fields(Config):
        assert f'| `{field.name}` |' in table, field.name
        if field.name != 'comm':
            assert f'`MOSAIC_MPI_{field.name.upper()}`' in table, field.name


def test_settings_of_the_wrong_type_are_refused(monkeypatch):
    for bad, error in [(dict(worker_exit='no'), TypeError), (dict(max_pending=2.5), ValueError),
                       (dict(max_chunk='big'), TypeError), (dict(trace=123), TypeError),
                       (dict(max_sleep=float('inf')), ValueError),
                       (dict(spin_time=float('nan')), ValueError)]:
        with pytest.raises(error):
            make_config(**bad)
    monkeypatch.setenv('MOSAIC_MPI_MAX_SLEPE', '1')
    with pytest.warns(RuntimeWarning, match='MOSAIC_MPI_MAX_SLEPE'):
        make_config()


def test_coalescing_plan_inlines_then_groups_mid_size_buffers_and_keeps_large_ones_alone():
    from mosaic_mpi.comms.wire import _ALIGN, _COALESCE, _GROUP, _INLINE, _plan
    k = 1 << 10
    sizes = [64 * k, 64 * k + 3, 0, 2 * _COALESCE, 64 * k, _COALESCE - 1, _COALESCE - 1,
             _COALESCE - 1, _COALESCE - 1, 5, 3 * _COALESCE]
    inline, messages = _plan(sizes, max_chunk=64 << 20)
    seen = sorted([i for i, _ in inline] + [i for _, members in messages for i, _ in members])
    assert seen == list(range(len(sizes)))                      # every buffer exactly once
    assert inline[:3] == [(0, 0), (1, 64 * k), (2, 2 * 64 * k + _ALIGN)]
    assert all(sizes[i] < _COALESCE and o % _ALIGN == 0 for i, o in inline)
    assert inline[-1][1] + sizes[inline[-1][0]] <= _INLINE
    for total, members in messages:
        if len(members) == 1:
            continue
        assert all(sizes[i] < _COALESCE for i, _ in members)     # only mid-size ones share
        assert total <= _GROUP
        ends = [offset + sizes[i] for i, offset in members]
        assert total == ends[-1]
        for (_, offset), end in zip(members[1:], ends):          # aligned, never overlapping
            assert offset % _ALIGN == 0 and offset >= end
    assert [2 * _COALESCE, [(3, 0)]] in messages                 # large buffers alone, in order
    assert messages[-1] == [3 * _COALESCE, [(10, 0)]]
    assert any(len(members) > 1 for _, members in messages)      # what did not fit inline shares
    # a smaller max_chunk bounds the shared messages too
    _, small = _plan([600 * k] * 10, max_chunk=700 * k)
    assert small and all(total <= 700 * k for total, _ in small)
    assert _plan([], 64 << 20) == ([], [])


def test_long_queues_of_calls_are_frozen_for_the_collector_and_thawed_when_drained():
    import gc
    from mosaic_mpi.runtime.gcpause import QueuedCalls
    queued = QueuedCalls(step=100)
    before = gc.get_freeze_count()
    records = []
    try:
        for n in range(1, 251):
            records.append([n])                 # a tracked object per queued call
            queued.submitted(n, outstanding=n)
        assert queued.freezes == 2 and queued.frozen         # at 100 and at 200 submitted
        assert gc.get_freeze_count() >= before + 200         # the records are skipped
        queued.submitted(300, outstanding=50)                # a short queue: no freeze
        assert queued.freezes == 2
    finally:
        queued.drained()
    assert not queued.frozen and gc.get_freeze_count() == 0
    garbage = []
    garbage.append(garbage)                     # a cycle made while frozen is still collected
    queued.submitted(400, outstanding=400)
    del garbage
    queued.drained()
    assert gc.collect() >= 1


def test_liveness_says_when_it_next_has_work_and_loses_a_silent_peer_on_time():
    # The transport checks its peers only once ``due`` has passed (not every progress cycle):
    # heartbeats still go out every interval and a silent peer is still lost after the timeout.
    from mosaic_mpi.comms.liveness import Liveness
    live = Liveness([1, 2], interval=0.5, timeout=2.0, now=0.0)
    assert live.due == 0.0
    assert live.tick(0.0) == ([1, 2], [])
    assert live.due == 0.5
    assert live.tick(0.3) == ([], [])           # before ``due``: nothing to do
    beats = lost = []
    now = 0.5
    while now < 3.0:
        live.heard(2, now)                      # 2 keeps talking, 1 stays silent
        beats, lost = live.tick(now)
        if lost:
            break
        assert live.due > now
        now = live.due
    assert lost == [(1, now)] and 2.0 < now <= 2.5
    assert list(live.last_heard) == [2] and live.due > now


def test_call_array_record_round_trips_and_members_own_copies():
    import numpy as np
    from mosaic_mpi.messages import CallArray, Dependency, Op, Select, pack, unpack
    from mosaic_mpi.serialisation import dumps, loads
    payload = dumps(((np.zeros(20000),), {}), 65536)
    record = CallArray((11, 12), (21, 22), 0, Op.CALL, 'step', payload,
                       (Dependency(1, 5, 2, Select.WHOLE, 'A.f (task 5)'),), 2)
    body, buffers, held = pack([record])
    (back,) = unpack(body, [bytearray(b) for b in buffers])
    assert back.task_ids == (11, 12) and back.tessera_ids == (21, 22) and back.op is Op.CALL
    assert back.method == 'step' and back.retries == 2 and back.deps == record.deps
    first, second = loads(back.payload)[0][0], loads(back.payload.copy())[0][0]
    first[0] = 1.0
    assert second[0] == 0.0 and not np.shares_memory(first, second)
    shared = payload.share()
    payload.release()
    assert not payload.locked and len(shared.buffers) == 1
    shared.release()
