"""Proxies of an earlier run (stop(), then init() again): every use raises, none reaches the new run."""
import asyncio, sys
import mosaic_mpi as mosaic

@mosaic.tessera
class W:
    def __init__(self, tag): self.tag = tag
    def who(self): return self.tag

async def round0():
    p = W.remote('old'); old = p.who(); await old
    return p, old

async def round1(p, old):
    q = W.remote('NEW'); await q
    for what, coro in [('call', lambda: p.who().result()), ('attr', lambda: p.tag), ('old result', lambda: old.result())]:
        try:
            v = await asyncio.wait_for(coro(), 5)
            print(what, 'GOT', v)
        except Exception as e:
            print(what, type(e).__name__, str(e)[:100])

rt = mosaic.init(worker_exit=False)
if rt is not None:
    p, old = asyncio.run(round0())
    mosaic.stop()
rt = mosaic.init(worker_exit=False)
if rt is not None:
    asyncio.run(round1(p, old))
    mosaic.stop()
