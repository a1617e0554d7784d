"""Failures that surface instead of hanging (issue 8), run by test_faults_mpi.py: ``CASE``."""

import asyncio
import sys

import mosaic_mpi as mosaic
import scenarios


@mosaic.tessera(max_retries=2)
class Flaky:
    def __init__(self):
        self.attempts = {}
        self.log = []

    def _count(self, key):
        self.attempts[key] = self.attempts.get(key, 0) + 1
        return self.attempts[key]

    def fails_first(self, key, times):
        n = self._count(key)
        self.log.append((key, n))
        if n <= times:
            raise ValueError(f'{key} attempt {n}')
        return n

    async def afails_first(self, key, times):
        await asyncio.sleep(0.01)
        return self.fails_first(key, times)

    def record(self, tag):
        self.log.append(tag)
        return tag


@mosaic.tessera
class Once:
    def fails_first(self, times):
        self.n = getattr(self, 'n', 0) + 1
        if self.n <= times:
            raise KeyError(self.n)
        return self.n


@mosaic.tessera(max_retries=1)
class ShakyStart:
    tries = 0

    def __init__(self):
        type(self).tries += 1
        if type(self).tries == 1:
            raise RuntimeError('first construction fails')

    def tries_made(self):
        return type(self).tries


async def expect(exc_type, awaitable):
    try:
        await awaitable
    except exc_type as exc:
        return exc
    raise AssertionError(f'expected {exc_type.__name__}')


async def case_retries(runtime):
    f = Flaky.remote()
    first = f.fails_first('a', 2)                    # fails twice, third attempt returns 3
    after = f.record('after')                        # queued behind: the retries stay in place
    assert await first.result() == 3
    assert await after.result() == 'after'
    assert await f.log == [('a', 1), ('a', 2), ('a', 3), 'after']
    error = await expect(ValueError, f.fails_first('b', 3).result())   # 3 failures > 2 retries
    assert str(error) == 'b attempt 3'
    error = await expect(ValueError, f.fails_first('c', 1, max_retries=0).result())
    assert str(error) == 'c attempt 1'                # the call's max_retries overrides
    assert await f.afails_first('d', 2).result() == 3                  # async methods too
    o = Once.remote()
    await expect(KeyError, o.fails_first(1).result())                  # no retries by default
    assert await o.fails_first(2, max_retries=5).result() == 3         # fails once more, then 3
    s = ShakyStart.remote()
    assert (await s) is s and await s.tries_made().result() == 2       # the constructor too
    try:
        f.fails_first('e', 0, max_retries=-1)
    except ValueError as exc:
        assert 'max_retries' in str(exc)
    else:
        raise AssertionError('a negative max_retries must be refused')


@mosaic.tessera
class Slow:
    def nap(self, seconds):
        import time
        time.sleep(seconds)
        return seconds


async def case_back_pressure(runtime):
    # run with MOSAIC_MPI_MAX_PENDING=50: a loop of calls on a slow tessera is held back
    limit = runtime.config.max_pending
    assert limit == 50
    s = Slow.remote(runtime=runtime.workers[0])
    await s
    peak = 0
    for _ in range(300):
        s.nap(0.005)                                 # fire and forget
        peak = max(peak, runtime.client.in_flight(runtime.workers[0].rank))
    assert peak == limit and runtime.client.throttled > 0, (peak, runtime.client.throttled)
    assert await s.nap(0).result() == 0
    assert runtime.client.in_flight(runtime.workers[0].rank) == 0


DELETED = []            # on each worker: tags of Mortal objects whose __del__ ran there


@mosaic.tessera
class Mortal:
    def __init__(self, tag):
        self.tag = tag

    def ping(self):
        return self.tag

    def slow(self, seconds):
        import time
        time.sleep(seconds)
        return self.tag

    def hold(self, other):
        self.other = other              # a proxy kept by another tessera
        return True

    def __del__(self):
        DELETED.append(self.tag)


@mosaic.tessera
class Census:
    def deleted(self):
        return list(DELETED)

    def hosted(self):
        return len(mosaic.runtime().worker.hosts)


async def case_tesserae_are_destroyed(runtime):
    worker = runtime.workers[0]
    census = Census.remote(runtime=worker)
    base = await census.hosted().result()

    async def deleted():
        return await census.deleted().result()

    async def wait_for(tag):
        for _ in range(500):
            if tag in await deleted():
                return True
            await asyncio.sleep(0.02)
        return False

    m = Mortal.remote('plain', runtime=worker)
    assert await m.ping().result() == 'plain'
    del m
    assert await wait_for('plain')                          # __del__ ran on its worker
    assert await census.hosted().result() == base
    # a temporary proxy: its call runs first
    assert await Mortal.remote('temporary', runtime=worker).ping().result() == 'temporary'
    assert await wait_for('temporary')
    # queued calls finish before the tessera goes
    q = Mortal.remote('queued', runtime=worker)
    calls = [q.slow(0.2) for _ in range(3)]
    del q
    assert [await c.result() for c in calls] == ['queued'] * 3
    assert await wait_for('queued')
    # a proxy handed to another tessera keeps its tessera alive, until that one drops it
    kept = Mortal.remote('kept', runtime=worker)
    keeper = Mortal.remote('keeper', runtime=worker)
    assert await keeper.hold(kept).result() is True and kept.collectable is True
    del kept
    await asyncio.sleep(0.3)
    assert 'kept' not in await deleted()
    assert await keeper.hold(None).result() is True
    assert await wait_for('kept')
    # an array's members go with it
    team = Mortal.remote('member', len=2, runtime=worker)
    assert [await t.result() for t in await team.ping()] == ['member', 'member']
    del team
    for _ in range(500):
        if (await deleted()).count('member') == 2:
            break
        await asyncio.sleep(0.02)
    assert (await deleted()).count('member') == 2


@mosaic.tessera
class Selfish:
    def __init__(self):
        self.value = 3

    def value_of(self):
        return self.value

    async def await_own_call(self, me):
        return await me.value_of().result()          # queued behind this very call

    async def read_own_attribute(self, me):
        return await me.value

    async def call_then_return(self, me):
        pending = me.value_of()                      # not awaited: fine, it runs next
        return pending.uid > 0


async def case_self_wait_is_an_error(runtime):
    s = Selfish.remote()
    await s
    error = await expect(mosaic.DeadlockError, s.await_own_call(s).result())
    assert 'await_own_call' in str(error) and 'value_of' in str(error) and 'queued behind' in str(error)
    await expect(mosaic.DeadlockError, s.read_own_attribute(s).result())
    assert await s.call_then_return(s).result() is True
    assert await s.value_of().result() == 3           # the tessera keeps working


@mosaic.tessera
class Ring:
    async def first(self, other, me):
        return await other.second(me).result()       # waits for `other`...

    async def second(self, back):
        return await back.third().result()           # ...which waits for a call queued on `me`

    def third(self):
        return 3


async def case_cycle_of_waits_is_an_error(runtime):
    a = Ring.remote(runtime=runtime.workers[0])
    b = Ring.remote(runtime=runtime.workers[-1])
    error = await expect(mosaic.DeadlockError, a.first(b, a).result())
    text = str(error)
    assert 'Ring.first' in text and 'Ring.second' in text and 'Ring.third' in text, text
    assert 'queued behind Ring.first' in text, text
    assert await a.third().result() == 3 and await b.third().result() == 3     # both go on


@mosaic.tessera
class Leaf:
    def h(self):
        return 1


@mosaic.tessera
class Middle:
    async def g(self, leaf):
        return await leaf.h().result()


@mosaic.tessera
class Fanout:
    async def flood(self, middle, leaf, n):
        tasks = [middle.g(leaf) for _ in range(n)]
        return sum([await t.result() for t in tasks])


async def case_actor_calls_are_never_held_back(runtime):
    # run with MOSAIC_MPI_MAX_PENDING=10: a worker's 50 calls in flight must not block it (the
    # calls they wait for need that worker's own thread)
    assert runtime.config.max_pending == 10
    first, last = runtime.workers[0], runtime.workers[-1]
    fan, leaf = Fanout.remote(runtime=first), Leaf.remote(runtime=first)
    middle = Middle.remote(runtime=last)
    assert await asyncio.wait_for(fan.flood(middle, leaf, 50).result(), 60) == 50


CASES = scenarios.cases(globals())


if __name__ == '__main__':
    scenarios.run(globals())
