"""Stride's parallelism tutorial, in mosaic_mpi terms.

Run with ``mpiexec -n 3 python examples/tutorial.py``. The only change from a Mosaic script is the
import line.
"""

import asyncio

import numpy as np

import mosaic_mpi as mosaic


@mosaic.tessera
class Accumulator:
    """A tessera: a stateful object that lives on a worker."""

    def __init__(self, size):
        self.total = np.zeros(size)
        self.calls = 0

    def add(self, x):
        self.total += x
        self.calls += 1
        return self.total.copy()

    def split(self):
        return self.total.min(), self.total.max()

    async def slow_scale(self, factor):
        await asyncio.sleep(0.1)
        self.total *= factor
        return factor

    def norm(self, x):
        return float(np.linalg.norm(x))


async def main(runtime):
    print(f'head with {runtime.num_workers} workers: {[w.uid for w in runtime.workers]}')

    # remote() returns at once; awaiting the proxy waits for the object to be built.
    acc = Accumulator.remote(4)
    await acc
    print('tessera on', acc.runtime_id)

    # A call returns a TaskProxy at once; await waits for it, result() fetches the value.
    task = acc.add(np.ones(4))
    await task
    print('after add:', await task.result())

    # Calls on one tessera run in call order, async methods included.
    acc.slow_scale(10.0)
    last = acc.add(np.ones(4))
    print('in order:', await last.result())               # (1 * 10) + 1 = 11

    # Outputs are references: pass them to other calls, which wait for them.
    # The value goes from worker to worker; the head never touches it.
    other = Accumulator.remote(4)
    minmax = acc.split()
    norm = other.norm(minmax.outputs[1])
    print('norm of max:', await norm.result())

    # t.outputs.done (or t.done) only orders: the argument is removed from the call.
    after = other.add(np.full(4, 2.0))
    total = other.add(after.done, np.ones(4))            # runs add(np.ones(4)) after `after`
    print('other total:', await total.result())

    # Attributes are read remotely.
    print('calls on acc:', await acc.calls)

    # Arrays of tesserae: one per worker.
    team = Accumulator.remote(2, len=runtime.num_workers)
    results = await mosaic.gather([member.add(np.arange(2.0)) for member in team])
    print('team:', [(await t.result()).tolist() for t in results])


if __name__ == '__main__':
    mosaic.run(main)
