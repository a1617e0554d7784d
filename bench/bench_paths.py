"""Every call path against the kept-proxy pipelined rate, in one run.

Run::

    mpiexec -n 2 python bench/bench_paths.py            # 20,000 calls per path
    mpiexec -n 3 python bench/bench_paths.py --calls 50000

Rows (calls/s, and the ratio to the first row, measured in the same run):

* kept proxies: ``ts = [p.noop() for _ in range(N)]``, then all awaited;
* dropped proxies (fire and forget): ``for _ in range(N): p.noop()``, then one awaited call
  (calls on one tessera run in order, so when it is done all are);
* 64 KiB argument, kept and dropped;
* an ``ArrayProxy`` of W members: ``arr.noop()`` per step (W tasks each), per member call;
* worker to worker: a tessera making N calls on a tessera of another worker (or of its own,
  with one worker) and awaiting the last.

The raw mpi4py rate of the same machine (N pickled isends, each answered) is printed first.
"""

import argparse
import time

import numpy as np
from mpi4py import MPI

import mosaic_mpi as mosaic
from _common import Bench


@mosaic.tessera
class Caller:
    async def calls(self, other, count):
        start = time.perf_counter()
        for _ in range(count - 1):
            other.noop()
        await other.noop()
        return time.perf_counter() - start


def raw_rate(comm, count):
    rank = comm.Get_rank()
    if rank == 0:
        start = time.perf_counter()
        requests = [comm.isend(None, 1) for _ in range(count)]
        for _ in range(count):
            comm.recv(source=1)
        MPI.Request.Waitall(requests)
        return count / (time.perf_counter() - start)
    if rank == 1:
        for _ in range(count):
            comm.recv(source=0)
            comm.send(None, 0)
    return None


def main_for(args, raw):
    count = args.calls

    async def main(runtime):
        p = Bench.remote(runtime=runtime.workers[0])
        await p
        small = np.zeros(8192)                      # 64 KiB
        rows = []

        async def kept(arg):
            start = time.perf_counter()
            tasks = [p.noop() if arg is None else p.consume(arg) for _ in range(count)]
            for t in tasks:
                await t
            return count / (time.perf_counter() - start)

        async def dropped(arg):
            start = time.perf_counter()
            for _ in range(count - 1):
                p.noop() if arg is None else p.consume(arg)
            await (p.noop() if arg is None else p.consume(arg))
            return count / (time.perf_counter() - start)

        await kept(None)                            # warm-up
        rows.append(('kept proxies, no argument', await kept(None)))
        rows.append(('dropped proxies, no argument', await dropped(None)))
        rows.append(('kept proxies, 64 KiB argument', await kept(small)))
        rows.append(('dropped proxies, 64 KiB argument', await dropped(small)))
        arr = Bench.remote(len=runtime.num_workers)
        await arr
        steps = max(1, count // runtime.num_workers)
        start = time.perf_counter()
        pending = [arr.noop() for _ in range(steps)]
        for step in pending:
            await step
        rows.append((f'ArrayProxy of {runtime.num_workers}, per member call',
                     steps * runtime.num_workers / (time.perf_counter() - start)))
        caller = Caller.remote(runtime=runtime.workers[0])
        target = Bench.remote(runtime=runtime.workers[-1])
        await caller
        await target
        seconds = await caller.calls(target, count).result()
        rows.append(('worker to worker, dropped proxies', count / seconds))
        base = rows[0][1]
        print(f'raw mpi4py pipelined messages: {raw:,.0f} msgs/s')
        print(f'{"path":<44}{"calls/s":>12}{"vs kept":>9}')
        for name, rate in rows:
            print(f'{name:<44}{rate:>12,.0f}{rate / base:>9.2f}')
    return main


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--calls', type=int, default=20000, help='calls per path')
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    raw = raw_rate(comm, args.calls)
    mosaic.run(main_for(args, raw))
