"""The warehouse's pure bookkeeping, without MPI: the store, references, wire records, and the
ordering of publishes (the head's numbering and the workers' check), fed with records."""

import asyncio
import pickle

import numpy as np
import pytest

import mosaic_mpi
from mosaic_mpi import messages as M
from mosaic_mpi.core.warehouse_object import WarehouseObject
from mosaic_mpi.messages import Select, make_id
from mosaic_mpi.runtime.bridge import LoopBridge, Requests
from mosaic_mpi.runtime.failures import unpack_error
from mosaic_mpi.runtime.objects import Objects
from mosaic_mpi.runtime.warehouse import Entry, Warehouse, missing_object, select, value_for
from mosaic_mpi.serialisation import Payload, dumps, loads


# -- the store ---------------------------------------------------------------------------------------

def test_objects_are_write_once_and_dropped_for_good():
    store = Warehouse()
    assert store.add_object(7, Entry(True, 'v', None)) is True
    assert store.find(7).value == 'v' and 7 in store and len(store) == 1
    with pytest.raises(RuntimeError, match='write-once'):
        store.add_object(7, Entry(True, 'w', None))
    assert store.find(8) is None and not store.dropped(8)
    assert store.forget(7) is True and store.find(7) is None and store.dropped(7)
    assert store.forget(7) is False                             # idempotent
    assert store.add_object(7, Entry(True, 'late copy', None)) is False     # a tombstone wins
    assert store.find(7) is None and len(store) == 0


def test_task_results_still_wait_and_objects_share_the_store():
    store = Warehouse()
    seen = []
    store.subscribe(1, seen.append)                              # a result not there yet: waits
    store.add_object(2, Entry(True, 'object', None))
    assert seen == []
    store.put(1, Entry(True, 'result', None))
    assert [e.value for e in seen] == ['result'] and len(store) == 2
    store.drop([1])
    assert 1 not in store and store.find(2).value == 'object'


def test_object_selector_keeps_the_value_as_it_is():
    assert select((5,), Select.OBJECT) == (5,)
    assert select((5,), Select.WHOLE) == 5
    assert select(None, Select.OBJECT) is None
    assert select({'a': 1}, Select.OBJECT) == {'a': 1}


def test_fetch_answers_hold_the_value_or_the_error():
    array = np.arange(100000.0)
    fetch = M.Fetch(3, 9, Select.OBJECT, 1)
    reply = value_for(fetch, Entry(True, array, None), 65536)
    assert reply.request_id == 3 and reply.ok and len(reply.payload.buffers) == 1
    assert np.array_equal(loads(reply.payload), array)
    reply.payload.release()
    missing = missing_object(make_id(1, 5), dropped=False)
    assert isinstance(missing, KeyError) and 'worker:1' in str(missing)
    assert 'was dropped' in str(missing_object(5, dropped=True))
    from mosaic_mpi.runtime.failures import pack_error
    reply = value_for(fetch, Entry(False, None, pack_error(missing, '')), 65536)
    assert not reply.ok and isinstance(unpack_error(reply.payload), KeyError)


# -- references --------------------------------------------------------------------------------------

def test_references_name_their_owner_and_travel_by_id():
    ref = WarehouseObject(make_id(2, 17), 'ndarray', published=True)
    assert ref.uid == f'ware-ndarray-{make_id(2, 17):032x}'
    assert ref.owner == 2 and ref.warehouse_id == 'worker:2' and ref.is_proxy
    assert ref.state is mosaic_mpi.TaskStatus.DONE
    assert WarehouseObject(make_id(0, 1), 'int').warehouse_id == 'head'
    back = pickle.loads(pickle.dumps(ref))
    assert back == ref and hash(back) == hash(ref) and back.published and back.uid == ref.uid
    parsed = WarehouseObject.from_uid(ref.uid)
    assert parsed == ref and parsed.type_name == 'ndarray'
    for bad in ('ware-int-12', 'nonsense', f'ware-int-{"g" * 32}'):
        with pytest.raises(ValueError, match='not a warehouse uid'):
            WarehouseObject.from_uid(bad)
    assert WarehouseObject(1, 'a') != WarehouseObject(2, 'a')
    assert 'ware-ndarray' in repr(ref) and 'worker:2' in repr(ref)


def test_reading_without_a_runtime_is_a_clear_error():
    ref = WarehouseObject(make_id(0, 1), 'int')
    with pytest.raises(mosaic_mpi.RuntimeNotRunning):
        asyncio.run(ref.value())


def test_new_records_cross_the_wire_form_unchanged():
    records = [M.PublishRequest(5, b'pickle', (10, 20)), M.Publish(3, 5, 2, b'pickle', (10,)),
               M.Publish(4, 6, 0, b'', ()), M.Published(5, 1), M.DropObject(11, 5, 2),
               M.Fetch(12, 5, Select.OBJECT, 1)]
    body, oob, held = M.pack(records)
    assert oob == [] and held == []
    back = M.unpack(body, [])
    assert back == records and [type(r) for r in back] == [type(r) for r in records]
    assert back[-1].selector is Select.OBJECT


# -- ordering of publishes ---------------------------------------------------------------------------

class _Transport:
    """Records what the objects service sends and broadcasts (in the order it does)."""

    def __init__(self):
        self.log = []

    def send(self, dest, record):
        self.log.append(('send', dest, record))

    def call_soon(self, fn, *args):
        fn(*args)

    def broadcast(self, root, payload, sizes, make_record):
        self.log.append(('bcast', root, tuple(sizes), make_record))


def _objects(rank, size=3):
    transport = _Transport()
    store = Warehouse()
    counter = iter(range(1, 1000))
    objects = Objects(rank, size, transport, LoopBridge(), Requests(rank), store,
                      lambda: make_id(rank, next(counter)), 65536)
    return objects, transport, store


def test_the_head_numbers_publishes_and_posts_its_part_in_that_order():
    head, transport, store = _objects(0)
    head.on_publish_request(1, M.PublishRequest(make_id(1, 1), b'd1', (100000,)))
    d2 = dumps([1, 2]).data
    head.on_publish_request(2, M.PublishRequest(make_id(2, 1), d2, ()))
    head.on_publish_request(1, M.PublishRequest(make_id(1, 2), b'd3', (70000, 80000)))
    announced = [(dest, r.seq, r.root, r.data) for kind, dest, r, *_ in transport.log
                 if kind == 'send' and isinstance(r, M.Publish)]
    assert announced == [(1, 0, 1, b''), (2, 0, 1, b'd1'),
                         (1, 1, 2, d2), (2, 1, 2, b''),
                         (1, 2, 1, b''), (2, 2, 1, b'd3')]
    posts = [(root, sizes) for kind, root, sizes, *_ in transport.log if kind == 'bcast']
    assert posts == [(1, (100000,)), (1, (70000, 80000))]      # no buffers: no broadcast
    # the value without buffers came in the request itself: the head holds it and says so
    assert store.find(make_id(2, 1)).value == [1, 2]
    assert ('send', 2, M.Published(make_id(2, 1), 0)) in transport.log


def test_a_worker_posts_broadcasts_in_the_heads_order_and_refuses_any_other():
    worker, transport, store = _objects(2)
    value = np.arange(20000.0)
    payload = dumps(value)
    worker.on_publish(0, M.Publish(0, make_id(1, 1), 1, payload.data, (160000,)))
    (kind, root, sizes, make_record), = transport.log
    assert (kind, root, sizes) == ('bcast', 1, (160000,))
    received = [np.frombuffer(pickle.PickleBuffer(b).raw(), np.uint8).copy()
                for b in payload.buffers]
    arrived = make_record(received)
    assert isinstance(arrived, M.Broadcasted) and arrived.object_id == make_id(1, 1)
    worker.on_broadcasted(1, arrived)
    assert np.array_equal(store.find(make_id(1, 1)).value, value)
    assert transport.log[-1] == ('send', 1, M.Published(make_id(1, 1), 2))   # acknowledged
    small = dumps({'k': 1})
    worker.on_publish(0, M.Publish(1, make_id(0, 4), 0, small.data, ()))
    assert store.find(make_id(0, 4)).value == {'k': 1}                       # no broadcast
    with pytest.raises(RuntimeError, match='out of order'):
        worker.on_publish(0, M.Publish(5, make_id(0, 5), 0, small.data, ()))
    payload.release()


def test_a_copy_arriving_after_its_drop_is_not_kept():
    worker, transport, store = _objects(1)
    worker.on_drop(2, M.DropObject(9, make_id(0, 3), 2))
    assert transport.log[-1][:2] == ('send', 2) and transport.log[-1][2].request_id == 9
    worker.on_publish(0, M.Publish(0, make_id(0, 3), 0, dumps('late').data, ()))
    assert store.find(make_id(0, 3)) is None and store.dropped(make_id(0, 3))


def test_owners_answer_reads_of_missing_objects_at_once():
    owner, transport, store = _objects(1)
    owner.on_fetch(2, M.Fetch(4, make_id(1, 99), Select.OBJECT, 2))
    (_, dest, reply), = transport.log
    assert dest == 2 and not reply.ok
    error = unpack_error(reply.payload)
    assert isinstance(error, KeyError) and 'not in the warehouse of worker:1' in str(error)


def test_a_fetch_reaching_the_owner_after_the_drop_gets_key_error_at_once():
    owner, transport, store = _objects(1)
    object_id = make_id(1, 1)
    store.add_object(object_id, Entry(True, np.ones(3), None))
    owner.on_fetch(2, M.Fetch(4, object_id, Select.OBJECT, 2))
    assert transport.log[-1][2].ok and np.array_equal(loads(transport.log[-1][2].payload),
                                                      np.ones(3))
    owner.on_drop(0, M.DropObject(5, object_id, 0))
    owner.on_fetch(2, M.Fetch(6, object_id, Select.OBJECT, 2))
    (_, dest, reply) = transport.log[-1]
    assert dest == 2 and reply.request_id == 6 and not reply.ok
    error = unpack_error(reply.payload)
    assert isinstance(error, KeyError) and 'was dropped' in str(error)


def test_put_keeps_a_copy_and_an_unpicklable_publish_fails_at_the_put():
    import threading
    objects, transport, store = _objects(0)
    value = np.ones(5)
    ref = asyncio.run(objects.put(value))
    assert transport.log == []                                               # nothing sent
    value += 1                                  # changing the original changes nothing stored
    assert np.array_equal(store.find(ref.object_id).value, np.ones(5))
    assert ref.uid.startswith('ware-ndarray-') and ref.owner == 0 and not ref.published
    first, second = asyncio.run(objects.get(ref)), asyncio.run(objects.get(ref.uid))
    assert first is not second and np.array_equal(first, np.ones(5))        # readers' own copies
    first += 1
    assert np.array_equal(asyncio.run(objects.get(ref)), np.ones(5))
    again = asyncio.run(objects.put(value))
    assert again != ref
    with pytest.raises(mosaic_mpi.SerialisationError):
        asyncio.run(objects.put(threading.Lock(), publish=True))
    assert len(store) == 2 and transport.log == []
    with pytest.raises(TypeError, match='WarehouseObject'):
        asyncio.run(objects.get(3))
    with pytest.raises(ValueError, match='rank 7'):
        asyncio.run(objects.get(WarehouseObject(make_id(7, 1), 'int')))


# -- the collector and long-lived results ------------------------------------------------------------

def test_many_stored_results_are_kept_out_of_full_collections_until_they_are_dropped():
    import gc
    store = Warehouse()
    step = store.stored.step
    try:
        for i in range(step + 10):
            store.put(i, Entry(True, [i], None, 'K.f'))
        assert store.stored.frozen and store.stored.freezes == 1 and gc.get_freeze_count() > 0
        store.drop(range(step // 2))
        assert store.stored.frozen                  # still many left
        store.drop(range(step // 2, step))
        assert not store.stored.frozen and gc.get_freeze_count() == 0
        assert len(store) == 10 and store.find(step + 3).value == [step + 3]
    finally:
        store.stored.drained()
