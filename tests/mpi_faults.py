"""Failures that surface instead of hanging (issue 8), run by test_faults_mpi.py: ``CASE``."""

import asyncio
import sys

import mosaic_mpi as mosaic


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
        s.nap(0.001)                                 # fire and forget
        peak = max(peak, runtime.client.in_flight(runtime.workers[0].rank))
    assert peak == limit and runtime.client.throttled > 0, (peak, runtime.client.throttled)
    assert await s.nap(0).result() == 0
    assert runtime.client.in_flight(runtime.workers[0].rank) == 0


CASES = {name[len('case_'):]: fn for name, fn in globals().items() if name.startswith('case_')}


async def main(runtime):
    name = sys.argv[1]
    await CASES[name](runtime)
    print(f'CASE {name} PASSED', flush=True)


if __name__ == '__main__':
    mosaic.run(main)
