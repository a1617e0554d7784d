"""Collective tessera arrays (S29), run by test_collective_mpi.py: ``CASE <name> PASSED``."""

import asyncio
import gc
import threading
import time

import numpy as np

import mosaic_mpi as mosaic
import scenarios


@mosaic.tessera
class Member:
    def __init__(self, scale=1.0):
        comm = mosaic.comm()                    # available in the constructor too
        self.index = comm.Get_rank()
        self.size = comm.Get_size()
        self.scale = scale
        self.log = []

    def where(self):
        comm = mosaic.comm()
        return mosaic.runtime().rank, comm.Get_rank(), comm.Get_size()

    def allreduce(self, n, tag=None):
        comm = mosaic.comm()
        local = np.full(n, self.scale * (comm.Get_rank() + 1.0))
        total = np.empty_like(local)
        comm.Allreduce(local, total)
        self.log.append(tag)
        return total

    def delayed_allreduce(self, seconds, tag=None):
        if mosaic.comm().Get_rank() == 0:
            time.sleep(seconds)         # the other members wait inside the collective meanwhile
        return self.allreduce(3, tag)

    def fail_on(self, index):
        comm = mosaic.comm()
        if comm.Get_rank() == index:
            raise ValueError(f'member {index} fails before its collective')
        comm.Barrier()
        return comm.Get_rank()

    def use(self, value, tag=None):
        return self.allreduce(2, tag)[0] + float(np.sum(value))

    def make_plain(self):
        return Plain.remote(runtime=mosaic.runtime().rank)      # a tessera proxy, returned

    def call_plain(self, plain, n):
        return plain.slow(0.01, n)                              # a task proxy, returned

    @mosaic.local
    def index_alone(self):
        return self.index

    @mosaic.local
    def comm_alone(self):
        return mosaic.comm()

    def no_comm_on_head_side(self):
        return 1

    async def coroutine(self):
        return 1


@mosaic.tessera
class Fragile:
    def __init__(self, index):
        comm = mosaic.comm()
        if comm.Get_rank() == index:
            raise ValueError(f'member {index} fails in its constructor')
        comm.Barrier()                  # the others wait here for ever (as in MPI)


@mosaic.tessera
class Plain:
    def comm(self):
        return mosaic.comm()

    def slow(self, seconds, value):
        time.sleep(seconds)
        return np.full(1 << 20, float(value))

    def echo(self, x):
        return x

    def keep(self, member):
        self.kept = member
        return member.uid

    def forget(self):
        self.kept = None
        return True

    def hosting(self, tessera_id):
        return tessera_id in mosaic.runtime().worker.hosts


async def raises(error, coroutine_or_call, contains):
    try:
        outcome = coroutine_or_call()
        if asyncio.iscoroutine(outcome) or hasattr(outcome, '__await__'):
            await outcome
    except error as exc:
        assert contains in str(exc), str(exc)
        return exc
    raise AssertionError(f'{error.__name__} not raised')


async def case_ranks_and_allreduce(runtime):
    n = runtime.num_workers
    for count in range(1, n + 1):
        arr = Member.remote(len=count, collective=True)
        await arr
        places = await arr.where().result()
        ranks = [p[0] for p in places]
        assert len(set(ranks)) == count, places                 # distinct workers
        assert ranks == arr.ranks, (ranks, arr.ranks)
        assert [p[1] for p in places] == list(range(count)), places    # comm rank == index
        assert all(p[2] == count for p in places), places
        assert await arr.index == list(range(count))
        totals = await arr.allreduce(5).result()
        expected = sum(i + 1.0 for i in range(count))
        for total in totals:
            assert np.array_equal(total, np.full(5, expected)), totals
        big = await arr.allreduce(1 << 20).result()             # 8 MiB per member
        assert all(float(b[0]) == expected and b.size == 1 << 20 for b in big)


async def case_two_arrays_sharing_workers_keep_one_order(runtime):
    # x's member 0 waits for an argument made slowly by a plain tessera on another worker; were
    # the workers to run y's call first where it is ready, x's and y's collectives would wait
    # for each other forever. Every worker runs them in the head's order instead.
    x = Member.remote(len=2, collective=True)
    y = Member.remote(10.0, len=2, collective=True)
    await x
    await y
    assert x.ranks == y.ranks, (x.ranks, y.ranks)      # the same two workers
    # on x's member 0's worker: the argument is local, ready as soon as made; on member 1's it
    # is fetched (8 MiB), ready later, after y's call has arrived there
    slow = Plain.remote(runtime=x.ranks[0])
    results = []
    for round_ in range(3):
        made = slow.slow(0.3, round_)
        results.append(x.use(made, tag=f'x{round_}'))
        results.append(y.allreduce(2, tag=f'y{round_}'))
    values = [await r.result() for r in results]
    for round_ in range(3):
        xs, ys = values[2 * round_], values[2 * round_ + 1]
        assert xs == [3.0 + (1 << 20) * round_] * 2, xs
        assert all(np.array_equal(v, np.full(2, 30.0)) for v in ys), ys
    assert await x.log == [[f'x{r}' for r in range(3)]] * 2
    assert await y.log == [[f'y{r}' for r in range(3)]] * 2


async def case_member_blocked_in_a_collective_leaves_its_worker_working(runtime):
    # Member 0 sleeps longer than the heartbeat timeout (1.5 s here) before joining; member 1
    # waits inside Allreduce meanwhile. Its worker keeps answering calls and sending heartbeats.
    arr = Member.remote(len=2, collective=True)
    await arr
    other = Plain.remote(runtime=arr.ranks[1])
    call = arr.delayed_allreduce(3.0, tag='late')
    await asyncio.sleep(0.3)
    for i in range(5):                          # round trips to the blocked member's worker
        assert await other.echo(i).result() == i
    totals = await call.result()
    assert all(np.array_equal(t, np.full(3, 3.0)) for t in totals), totals
    assert runtime.client.lost == set(), runtime.client.lost


async def case_bad_input(runtime):
    n = runtime.num_workers
    await raises(ValueError, lambda: Member.remote(len=n + 1, collective=True),
                 f'needs {n + 1} distinct workers, but the runtime has {n}')
    await raises(ValueError, lambda: Member.remote(collective=True), 'needs len=N')
    await raises(ValueError, lambda: Member.remote(len=2, collective=True,
                                                   runtime=runtime.workers[0]),
                 'runtime= cannot be given')
    arr = Member.remote(len=2, collective=True)
    await arr
    await raises(mosaic.CollectiveError, lambda: arr[1].allreduce(3),
                 'Member.allreduce was called on one member of a collective array alone')
    await raises(mosaic.CollectiveError,
                 lambda: arr.allreduce(3, runtime=runtime.workers[arr.ranks[0] - 1]),
                 'called on one member of a collective array alone')
    await raises(TypeError, lambda: arr.coroutine(), 'must be plain functions')
    await raises(ValueError, lambda: arr.allreduce(3, max_retries=1), 'max_retries=')
    # a @mosaic.local method runs on one member; mosaic.comm() raises there
    assert await arr[1].index_alone().result() == 1
    await raises(mosaic.CollectiveError, lambda: arr[0].comm_alone().result(),
                 'mosaic.comm() is not available in Member.comm_alone')
    # mosaic.comm() outside a collective array: on a plain tessera, on the head
    plain = Plain.remote()
    await raises(mosaic.CollectiveError, lambda: plain.comm().result(),
                 'only available inside the constructor or a method of a collective')
    await raises(mosaic.CollectiveError, mosaic.comm, 'only available inside')
    # attributes may be read on one member; the array still works afterwards
    assert await arr[1].size == 2
    totals = await arr.allreduce(2).result()
    assert all(np.array_equal(t, np.full(2, 3.0)) for t in totals)


async def case_failed_member_raises_at_once(runtime):
    # Member 1 raises before its Barrier; member 0 waits in it for ever (as in MPI). Awaiting
    # the array call raises member 1's error at once instead of waiting for member 0; the run
    # then ends with it (the worker inside the Barrier exits without MPI_Finalize).
    arr = Member.remote(len=2, collective=True)
    await arr
    await raises(ValueError, lambda: arr.fail_on(1), 'member 1 fails before its collective')
    print('CASE failed_member_raises_at_once RAISED', flush=True)
    raise RuntimeError('the run ends after the failed member')


async def case_failed_constructor_raises_at_once(runtime):
    # Member 1's constructor raises; member 0's waits in a Barrier for it: awaiting the array
    # raises member 1's error at once.
    fragile = Fragile.remote(1, len=2, collective=True)
    await raises(ValueError, lambda: fragile, 'member 1 fails in its constructor')
    print('CASE failed_constructor_raises_at_once RAISED', flush=True)
    raise RuntimeError('the run ends after the failed member')


async def case_unpicklable_constructor_argument_sends_nothing(runtime):
    # The argument fails to pickle at the call. The first member's JoinGroup used to be sent
    # all the same, so the next tessera built on that worker took it for its own: a plain
    # tessera then waited in MPI_Comm_create_group for ever.
    await raises(mosaic.SerialisationError,
                 lambda: Member.remote(threading.Lock(), len=2, collective=True),
                 'positional argument 0 of Member.__init__() cannot be pickled')
    plain = Plain.remote(runtime=runtime.workers[0])
    assert await asyncio.wait_for(plain.echo(5).result(), 20) == 5
    arr = Member.remote(len=2, collective=True)
    places = await asyncio.wait_for(arr.where().result(), 20)
    assert [p[1:] for p in places] == [(0, 2), (1, 2)], places


async def case_methods_return_proxies(runtime):
    # A collective method may return proxies (S14) as any method may: they used to be taken for
    # the coroutine of an async def method (they are awaitable) and the call failed with a
    # TypeError saying so.
    arr = Member.remote(len=2, collective=True)
    made = await arr.make_plain().result()
    assert [p.remote_runtime.rank for p in made] == arr.ranks, (made, arr.ranks)
    assert [await p.echo(i).result() for i, p in enumerate(made)] == [0, 1]
    tasks = await arr.call_plain(made[0], 7).result()
    assert [float((await t.result())[0]) for t in tasks] == [7.0, 7.0]


@mosaic.tessera
class Tiny:
    pass


@mosaic.tessera
class Builder:
    async def build(self, rank, n):
        made = []
        for i in range(n):
            made.append(Tiny.remote(runtime=rank))
            if i % 50 == 0:
                await asyncio.sleep(0)
        for tiny in made:
            await tiny
        return n


async def case_arrays_made_while_a_worker_builds_tesserae_there(runtime):
    # Worker 2 builds tesserae on worker 1 while the head makes arrays with members there. A
    # CreateTessera from worker 2 arriving between the head's JoinGroup and its CreateTessera
    # used to consume the JoinGroup: the head's member was built as a plain tessera (its
    # mosaic.comm() raised) and the other member waited in MPI_Comm_create_group for ever.
    first, last = runtime.workers[0], runtime.workers[-1]
    building = Builder.remote(runtime=last).build(first.rank, 5000)
    payload = {i: np.ones(10) for i in range(3000)}     # slow to pickle: a wider window
    arrays = [Member.remote(payload, len=2, collective=True) for _ in range(30)]
    for arr in arrays:
        places = await asyncio.wait_for(arr.where().result(), 30)
        assert [p[1:] for p in places] == [(0, 2), (1, 2)], places
    assert await building.result() == 5000


async def case_failed_member_caught_by_main(runtime):
    # main catches member 1's error and returns: member 0 still waits in its Barrier, so the
    # run cannot drain. It used to wait for it for ever; now the head says which call is stuck
    # and ends the job (non-zero), as after a failed run.
    arr = Member.remote(len=2, collective=True)
    await arr
    await raises(ValueError, lambda: arr.fail_on(1), 'member 1 fails before its collective')
    plain = Plain.remote()
    assert await plain.echo(3).result() == 3        # the rest of the runtime still works
    print('CASE failed_member_caught_by_main RETURNS', flush=True)


async def case_arrays_made_and_dropped(runtime):
    # communicators are freed with their array; making many in turn works
    for i in range(20):
        arr = Member.remote(float(i), len=2, collective=True)
        totals = await arr.allreduce(1).result()
        assert float(totals[0][0]) == 3.0 * i, totals
        del arr, totals
    await runtime.barrier()


async def case_member_passed_to_a_tessera_lives_while_referenced(runtime):
    # A member proxy passed to a plain tessera is a borrowed reference like any tessera proxy:
    # the borrower's proxy going must not destroy the member the head still holds (it used to
    # be destroyed then, and the next call on the array hung), and the member is destroyed once
    # neither holds it.
    arr = Member.remote(len=2, collective=True)
    await arr
    keeper = Plain.remote(runtime=arr.ranks[0])
    uid = arr[0].uid
    for _ in range(3):
        assert await keeper.keep(arr[0]).result() == uid
        assert await keeper.forget().result()
        await asyncio.sleep(0.2)        # long enough for the borrower's updates to be applied
        assert await keeper.hosting(uid).result()
        places = await asyncio.wait_for(arr.where().result(), 20)
        assert [p[1] for p in places] == [0, 1], places
    assert await keeper.keep(arr[0]).result() == uid       # borrowed while the head drops it
    del arr
    gc.collect()
    await asyncio.sleep(0.2)
    assert await keeper.hosting(uid).result()
    assert await keeper.forget().result()

    async def gone():
        return not await keeper.hosting(uid).result()
    assert await eventually(gone), 'the member outlived its last proxy'


async def eventually(check, seconds=20.0):
    """Whether ``await check()`` became true within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


if __name__ == '__main__':
    scenarios.run(globals())
