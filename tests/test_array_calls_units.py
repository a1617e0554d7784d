"""Array calls on the caller's side, without MPI: the event sequences of one ``ArrayCall``.

A call on an array keeps one shared record of its members (``ArrayCall``) instead of a
``TaskState`` and a ``TaskProxy`` per member. These tests drive a real :class:`Client` with the
records a worker would send (``Completed``, ``CompletedMany``) and a worker loss, and check its
counts, the members' outcomes, the Drops it sends and the member proxies it makes on demand.
"""

import asyncio
import types
import warnings

import pytest

import mosaic_mpi.messages as M
from mosaic_mpi.core.state import ArrayCall
from mosaic_mpi.core.tessera import TaskArray
from mosaic_mpi.core.task import TaskStatus
from mosaic_mpi.errors import RuntimeDisconnectedError
from mosaic_mpi.messages import Op, make_id
from mosaic_mpi.runtime.bridge import LoopBridge, Requests
from mosaic_mpi.runtime.client import Client
from mosaic_mpi.runtime.failures import pack_error


class _Transport:
    """Keeps what the client sends; runs ``call_soon`` functions at once."""

    def __init__(self):
        self.sent = []

    def send(self, dest, record):
        self.sent.append((dest, record))

    def call_soon(self, fn, *args):
        fn(*args)

    def flush_now(self):
        pass

    def drops(self):
        return sorted(uid for _, r in self.sent if isinstance(r, M.Drop) for uid in r.task_ids)


def _client():
    transport = _Transport()
    placement = types.SimpleNamespace(workers=[], head=None)
    client = Client(0, transport, LoopBridge(), Requests(0), placement, 65536)
    return client, transport


def _call(client, ranks=(1, 2, 1, 2)):
    """An array call on members living on ``ranks`` (tessera ids of rank 0's run)."""
    members = [(make_id(0, 1000 + i), rank) for i, rank in enumerate(ranks)]
    group = client.submit_array_call(members, 'K', Op.CALL, 'step', (), {})
    return group, TaskArray._of_call(group)


def _failure(message):
    return pack_error(ValueError(message), 'Remote traceback (test):')


def test_an_array_call_sends_one_record_per_worker_and_counts_every_member():
    client, transport = _client()
    group, tasks = _call(client)
    records = [(dest, r) for dest, r in transport.sent if isinstance(r, M.CallArray)]
    assert [dest for dest, _ in records] == [1, 2]
    assert records[0][1].task_ids == (group.task_ids[0], group.task_ids[2])
    assert records[1][1].task_ids == (group.task_ids[1], group.task_ids[3])
    assert client.outstanding == 4 and client.in_flight(1) == 2 and client.in_flight(2) == 2
    assert group.states is None                 # no member state until one is looked at
    assert len(tasks) == 4 and len(client._tasks) == 0


def test_completions_of_many_and_one_finish_the_members_and_the_counts():
    client, transport = _client()
    group, tasks = _call(client)
    ids = group.task_ids
    client.on_completed_many(1, M.CompletedMany((ids[0], ids[2])))
    assert client.in_flight(1) == 0 and client.outstanding == 2 and group.remaining == 2
    client.on_completed(2, M.Completed(ids[1], _failure('member 1')))
    client.on_completed(2, M.Completed(ids[3], None))
    assert client.outstanding == 0 and group.remaining == 0 and group.failures == 1
    assert list(group.status) == [ArrayCall.DONE, ArrayCall.FAILED, ArrayCall.DONE, ArrayCall.DONE]
    assert group not in client._groups
    # a repeated record (a late duplicate) changes nothing
    client.on_completed_many(1, M.CompletedMany((ids[0],)))
    assert client.outstanding == 0 and client.in_flight(1) == 0
    # members looked at after they ended carry their outcome
    assert tasks[0].state is TaskStatus.DONE and tasks[1].state is TaskStatus.FAILED
    with pytest.raises(ValueError, match='member 1'):
        tasks[1].wait()


def test_a_member_looked_at_before_it_ends_is_finished_by_its_completion():
    client, transport = _client()
    group, tasks = _call(client)
    member = tasks[2]
    assert member is tasks[2] and member.state is TaskStatus.PENDING
    assert member._st.task_id in client._tasks and member._st.task_id not in client._members
    client.on_completed_many(1, M.CompletedMany((group.task_ids[0], group.task_ids[2])))
    assert member.state is TaskStatus.DONE and group.remaining == 2
    assert client.outstanding == 2 and client.in_flight(1) == 0


def test_freeing_the_task_array_drops_the_ended_members_now_and_the_others_when_they_end():
    client, transport = _client()
    group, tasks = _call(client)
    ids = group.task_ids
    kept = tasks[3]                                 # has a proxy of its own: not dropped with it
    client.on_completed_many(1, M.CompletedMany((ids[0],)))
    client.on_completed(2, M.Completed(ids[3], None))
    del tasks
    assert transport.drops() == []                  # batched until the idle hook
    client.flush_drops()
    assert transport.drops() == [ids[0]]
    client.on_completed_many(1, M.CompletedMany((ids[2],)))
    client.on_completed(2, M.Completed(ids[1], None))
    client.flush_drops()
    assert transport.drops() == sorted([ids[0], ids[1], ids[2]])
    del kept
    client.flush_drops()
    assert transport.drops() == sorted(ids)
    assert client._tasks == {} and client._members == {}


def test_a_failed_member_nobody_looked_at_warns_when_it_is_freed():
    client, transport = _client()
    group, tasks = _call(client, ranks=(1, 1))
    client.on_completed(1, M.Completed(group.task_ids[1], _failure('lost cause')))
    client.on_completed(1, M.Completed(group.task_ids[0], None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        del tasks
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and 'K.step' in messages[0] and 'lost cause' in messages[0]


@pytest.mark.filterwarnings('ignore:.*nobody awaited it:RuntimeWarning')
def test_a_lost_worker_fails_its_members_with_or_without_a_proxy():
    client, transport = _client()
    group, tasks = _call(client)
    looked_at = tasks[1]                            # on rank 2, with a state of its own
    client.on_completed_many(2, M.CompletedMany((group.task_ids[3],)))
    labels = client.lose(2, 'test')
    assert labels == [f'K.step (task {group.task_ids[1]})']
    assert looked_at.state is TaskStatus.FAILED and client.in_flight(2) == 0
    client2, _ = _client()
    group2, tasks2 = _call(client2)
    labels2 = client2.lose(1, 'test')
    assert sorted(labels2) == sorted(f'K.step (task {group2.task_ids[i]})' for i in (0, 2))
    assert group2.failures == 2 and client2.outstanding == 2
    with pytest.raises(RuntimeDisconnectedError, match='worker:1 was lost'):
        tasks2[0].wait()
    client2.on_completed(1, M.Completed(group2.task_ids[0], None))    # late: ignored
    assert group2.failures == 2 and client2.outstanding == 2


@pytest.mark.filterwarnings('ignore:.*nobody awaited it:RuntimeWarning')
def test_awaiting_the_task_array_waits_once_and_raises_the_first_failure_in_order():
    async def scenario():
        client, transport = _client()
        group, tasks = _call(client)
        ids = group.task_ids
        waiter = asyncio.ensure_future(tasks._wait())
        await asyncio.sleep(0)
        assert len(group.waiters) == 1 and not waiter.done()
        client.on_completed_many(1, M.CompletedMany((ids[0], ids[2])))
        client._bridge.flush()
        await asyncio.sleep(0)
        assert not waiter.done()
        client.on_completed(2, M.Completed(ids[3], _failure('member 3')))
        client.on_completed(2, M.Completed(ids[1], _failure('member 1')))
        client._bridge.flush()
        with pytest.raises(ValueError, match='member 1'):
            await asyncio.wait_for(waiter, 5)
        # the barrier waits for every member, failed or not
        group2, tasks2 = _call(client)
        barrier = asyncio.ensure_future(client.barrier())
        await asyncio.sleep(0)
        client.on_completed(1, M.Completed(group2.task_ids[0], _failure('x')))
        client._bridge.flush()
        await asyncio.sleep(0.01)
        assert not barrier.done()
        client.on_completed_many(1, M.CompletedMany((group2.task_ids[2],)))
        client.on_completed_many(2, M.CompletedMany((group2.task_ids[1], group2.task_ids[3])))
        client._bridge.flush()
        await asyncio.wait_for(barrier, 5)
        assert (await asyncio.wait_for(TaskArray._of_call(_done(client))._wait(), 5)) is not None
        del tasks, tasks2, waiter           # (their unawaited failures warn now, not later)

    asyncio.run(scenario())


def _done(client):
    group, _ = _call(client, ranks=(1,))
    client.on_completed(1, M.Completed(group.task_ids[0], None))
    return group


def test_a_task_array_is_a_sequence_of_its_members():
    client, transport = _client()
    group, tasks = _call(client)
    assert tasks[-1] is tasks[3] and tasks[1:3] == [tasks[1], tasks[2]]
    assert list(tasks) == tasks and len(tasks + [None]) == 5 and ([None] + tasks)[1] is tasks[0]
    assert [t.uid for t in tasks] == list(group.task_ids)
    with pytest.raises(IndexError):
        tasks[4]
    assert 'TaskProxy' in repr(tasks) and TaskArray([tasks[0]]) == [tasks[0]]


def test_a_completion_looked_up_before_the_member_got_its_state_still_finishes_it():
    # The progress thread found the member in the table, then a user thread made its state.
    client, transport = _client()
    group, tasks = _call(client)
    task_id = group.task_ids[0]
    found = client._members[task_id]
    member = tasks[0]
    client._finish_member(found[0], found[1], None)
    assert member.state is TaskStatus.DONE and client.outstanding == 3 and group.remaining == 3


def test_threads_looking_at_one_member_at_once_get_one_proxy():
    import sys
    import threading
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)                 # threads switch often: the race shows
    try:
        for _ in range(20):
            client, transport = _client()
            group, tasks = _call(client, ranks=(1,) * 200)
            start = threading.Barrier(4)
            seen = []

            def look():
                start.wait()
                seen.append([tasks[i] for i in range(len(tasks))])

            threads = [threading.Thread(target=look) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert all(a is b for view in seen[1:] for a, b in zip(seen[0], view))
    finally:
        sys.setswitchinterval(interval)


def test_a_completion_arriving_while_a_member_gets_its_state_is_not_lost():
    # The progress thread reads the tables without the lock; the user thread is switched out
    # in the middle of making the member's state (here: in the pins' pop).
    import threading
    import time

    class SlowPins(dict):
        def pop(self, *args):
            time.sleep(0.2)
            return super().pop(*args)

    for many in (False, True):
        client, transport = _client()
        group, tasks = _call(client, ranks=(1, 2))
        group.pins = SlowPins()
        looker = threading.Thread(target=lambda: tasks[0])
        looker.start()
        time.sleep(0.05)
        task_id = group.task_ids[0]
        if many:
            client.on_completed_many(1, M.CompletedMany((task_id,)))
        else:
            client.on_completed(1, M.Completed(task_id, None))
        looker.join()
        assert tasks[0].state is TaskStatus.DONE, many
        assert group.remaining == 1 and client.outstanding == 1


def test_a_pickled_or_copied_task_array_keeps_its_class():
    import copy
    import pickle
    from mosaic_mpi.core.collective import CollectiveTaskArray
    for cls in (TaskArray, CollectiveTaskArray):
        tasks = cls([1, 2, 3])
        for again in (pickle.loads(pickle.dumps(tasks)), copy.copy(tasks)):
            assert type(again) is cls and again == [1, 2, 3]
