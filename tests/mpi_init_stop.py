"""Two-step use: init() on every rank, user code on any event loop, stop() (SPEC S2)."""

import asyncio

import mosaic_mpi as mosaic


@mosaic.tessera
class Doubler:
    def double(self, x):
        return 2 * x


runtime = mosaic.init(log_level='info')          # workers serve inside this call, then exit
assert mosaic.init() is runtime and mosaic.runtime() is runtime
proxy = Doubler.remote()                          # from plain synchronous code


async def first():
    return await proxy.double(21).result()


async def second():
    return await mosaic.gather([proxy.double(i).result() for i in range(3)])

assert asyncio.run(first()) == 42
assert asyncio.run(second()) == [0, 2, 4]         # a second event loop works too
unawaited = proxy.double(5)                       # stop() waits for it
mosaic.stop()
mosaic.stop()                                     # harmless twice
assert mosaic.runtime() is None
assert unawaited.check_result() is True
print('INIT STOP PASSED', flush=True)
