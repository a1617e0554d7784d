"""What "no sharing" costs: a 64 MiB result handed to two local consumers, against np.copyto.

Run::

    mpiexec -n 2 python bench/bench_sharing.py            # 64 MiB, 10 repetitions
    mpiexec -n 2 python bench/bench_sharing.py --mib 256

A result stays on the worker that produced it; a consumer on the same worker gets its own copy
(``mosaic_mpi/runtime/ownership.py``), so that a method updating its argument in place cannot
change what the next consumer or the head receives. Measured in one run, on the worker:

* ``np.copyto`` of the same number of bytes (the raw cost of one copy);
* two local consumers of one stored result, ``a.consume(t)`` and ``b.consume(t)``, each
  timed from submission to completion, minus the same calls with a small argument (the call's
  own cost): the time the hand-out adds per consumer.

Printed: per-consumer hand-out time, np.copyto time, and their ratio.
"""

import argparse
import statistics
import time

import numpy as np

import mosaic_mpi as mosaic


@mosaic.tessera
class Holder:
    def produce(self, count):
        return np.ones(count)

    def consume(self, array):
        return array.nbytes

    def copyto_seconds(self, count, repeat):
        src, dst = np.ones(count), np.empty(count)
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            np.copyto(dst, src)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)


def main_for(args):
    count = args.mib * (1 << 20) // 8

    async def main(runtime):
        worker = runtime.workers[0]
        a, b = Holder.remote(runtime=worker), Holder.remote(runtime=worker)
        small = a.produce(1)
        await small
        copyto = await a.copyto_seconds(count, args.repeat).result()
        handout, overhead = [], []
        for _ in range(args.repeat):
            t = a.produce(count)
            await t
            for consumer in (a, b):
                start = time.perf_counter()
                assert await consumer.consume(t).result() == count * 8
                handout.append(time.perf_counter() - start)
                start = time.perf_counter()
                await consumer.consume(small).result()
                overhead.append(time.perf_counter() - start)
            del t
        added = statistics.median(handout) - statistics.median(overhead)
        print(f'{args.mib} MiB result, two local consumers, {args.repeat} repetitions')
        print(f'  hand-out per consumer (copy into its own array): {added * 1e3:8.2f} ms')
        print(f'  np.copyto of the same bytes on the worker:        {copyto * 1e3:8.2f} ms')
        print(f'  ratio hand-out / np.copyto:                       {added / copyto:8.2f}')
    return main


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mib', type=int, default=64, help='result size in MiB')
    parser.add_argument('--repeat', type=int, default=10, help='repetitions')
    mosaic.run(main_for(parser.parse_args()))
