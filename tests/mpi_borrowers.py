"""Distributed reference counting under MPI (issue 8 item 1), run by test_borrowers_mpi.py.

``python mpi_borrowers.py CASE`` on 3 ranks: the head and two workers, so that an owner, a
borrower and a third rank take part. Results are counted on their worker (``holding``), destroyed
tesserae by the ``__del__`` of their user object on their worker (``deleted``).
"""

import asyncio
import gc
import time

import numpy as np

import mosaic_mpi as mosaic
import scenarios

DELETED = []            # on each worker: tags of Mortal objects whose __del__ ran there


@mosaic.tessera
class Store:
    def big(self, n):
        return np.full(n, 2.0)

    def echo(self, value):
        return value

    def deleted(self):
        return list(DELETED)

    def holding(self, n):
        """How many results stored on this worker are arrays of ``n`` elements."""
        entries = list(mosaic.runtime().warehouse._entries.values())
        return sum(1 for e in entries if isinstance(e.value, np.ndarray) and e.value.size == n)


@mosaic.tessera
class Consumer:
    def __init__(self):
        self.kept = None

    async def total(self, refs, delay=0.0):
        await asyncio.sleep(delay)              # the caller has dropped its proxy by then
        return float(sum([(await t.result()).sum() for t in refs]))

    def keep(self, refs):
        self.kept = refs                        # held by this tessera
        return len(refs)

    def hold(self, proxy):
        self.kept = proxy
        return True

    async def total_kept(self):
        return float(sum([(await t.result()).sum() for t in self.kept]))

    def forget(self):
        self.kept = None
        gc.collect()
        return True

    def make_result(self, store, n):
        return store.big(n)                     # a proxy this worker owns, returned

    def make_mortal(self, tag, rank):
        return Mortal.remote(tag, runtime=rank)     # a tessera this worker owns, returned

    def call_held(self):
        return self.kept.ping()                 # a call made from here on a borrowed tessera


@mosaic.tessera
class Mortal:
    def __init__(self, tag):
        self.tag = tag

    def ping(self):
        return self.tag

    def __del__(self):
        DELETED.append(self.tag)


async def eventually(check, seconds=20.0):
    """Whether ``await check()`` became true within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def freed(store, n):
    """Whether every array of ``n`` elements stored on ``store``'s worker is freed in time."""
    async def none_left():
        return await store.holding(n).result() == 0
    return await eventually(none_left)


def two_workers(runtime):
    return runtime.workers[0], runtime.workers[-1]


async def case_result_in_a_container_is_kept_in_flight_then_freed(runtime):
    # t = a.f(big); u = b.g([t]); del t: b still fetches t; dropped everywhere, t is freed.
    first, last = two_workers(runtime)
    a, b = Store.remote(runtime=first), Consumer.remote(runtime=last)
    await a
    await b
    t = a.big(100_000)
    u = b.total([t], 0.3)
    del t
    gc.collect()
    assert await u.result() == 200_000.0
    del u
    assert await freed(a, 100_000), await a.holding(100_000).result()


async def case_many_results_passed_and_dropped_are_freed(runtime):
    first, last = two_workers(runtime)
    a, b = Store.remote(runtime=first), Consumer.remote(runtime=last)
    await a
    await b
    for _ in range(20):
        refs = [a.big(11) for _ in range(50)]
        assert await b.total(refs).result() == 50 * 22.0
    del refs
    gc.collect()
    assert await freed(a, 11), await a.holding(11).result()


async def case_result_returned_from_a_method_is_freed(runtime):
    # Owned by a worker (it submitted the task), borrowed by the head, stored on another worker.
    first, last = two_workers(runtime)
    a, b = Store.remote(runtime=first), Consumer.remote(runtime=last)
    await a
    await b
    p = await b.make_result(a, 1000).result()
    assert isinstance(p, mosaic.TaskProxy) and p.collectable
    assert float((await p.result()).sum()) == 2000.0
    # the head's own proxy comes back inside a result, and goes
    t = a.big(10)
    back = await a.echo([t]).result()
    assert back[0].uid == t.uid and float((await back[0].result()).sum()) == 20.0
    assert await a.holding(1000).result() == 1 and await a.holding(10).result() == 1
    del p, t, back
    gc.collect()
    assert await freed(a, 1000), await a.holding(1000).result()
    assert await freed(a, 10), await a.holding(10).result()


async def case_result_held_by_a_tessera_is_kept_until_it_drops_it(runtime):
    first, last = two_workers(runtime)
    a, b = Store.remote(runtime=first), Consumer.remote(runtime=last)
    await a
    await b
    refs = [a.big(12) for _ in range(3)]
    assert await b.keep(refs).result() == 3
    del refs
    gc.collect()
    await asyncio.sleep(0.5)
    assert await b.total_kept().result() == 72.0        # still there, after 0.5 s
    assert await a.holding(12).result() == 3
    assert await b.forget().result() is True
    assert await freed(a, 12), await a.holding(12).result()


async def case_tessera_held_by_a_tessera_lives_until_dropped(runtime):
    first, last = two_workers(runtime)
    census = Store.remote(runtime=first)
    keeper = Consumer.remote(runtime=last)
    kept = Mortal.remote('kept', runtime=first)
    assert await keeper.hold(kept).result() is True
    del kept
    gc.collect()
    await asyncio.sleep(0.5)
    assert 'kept' not in await census.deleted().result()
    assert await (await keeper.call_held().result()).result() == 'kept'   # still callable
    assert await keeper.forget().result() is True

    async def destroyed():
        return 'kept' in await census.deleted().result()
    assert await eventually(destroyed), await census.deleted().result()


async def case_tessera_returned_from_a_method_is_destroyed(runtime):
    first, last = two_workers(runtime)
    census = Store.remote(runtime=first)
    maker = Consumer.remote(runtime=last)
    m = await maker.make_mortal('returned', first.rank).result()
    assert isinstance(m, mosaic.TesseraProxy) and m.collectable
    assert await m.ping().result() == 'returned'
    del m
    gc.collect()

    async def destroyed():
        return 'returned' in await census.deleted().result()
    assert await eventually(destroyed), await census.deleted().result()


CASES = scenarios.cases(globals())


if __name__ == '__main__':
    scenarios.run(globals())
