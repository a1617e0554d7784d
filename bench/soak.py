"""Memory stays flat: millions of tasks, big results and thousands of tesserae, made and dropped.

Run::

    mpiexec -n 3 python bench/soak.py                    # the full soak (minutes)
    mpiexec -n 3 python bench/soak.py --scale 0.05       # 5 % of every count (a quick check)

Phases (counts at ``--scale 1``), each after a warm-up of 5 % of its count:

1. 1,000,000 small tasks submitted in batches of 10,000, awaited, dropped;
2. 2,000 tasks whose 8 MB results stay on their worker, then are dropped (fetched 1 in 10);
3. 10,000 tesserae created, called once and dropped;
4. 100,000 tasks whose proxies are passed, inside lists of 1,000, to a tessera on another worker
   (which keeps them until its call ends), then dropped everywhere (distributed reference
   counting: before it, each of these results stayed stored for the run);
5. 2,000 tesserae passed to a tessera on another worker, which calls them, then dropped.

After each phase every rank's resident memory (RSS, psutil) is compared with its value after
the warm-up; the issue's bound is 50 MB. Printed per phase and rank: RSS after warm-up, after
the phase, and the growth. Exit code 1 if a growth passes ``--limit`` MB.
"""

import argparse
import asyncio
import gc
import sys
import time

import numpy as np
import psutil

import mosaic_mpi as mosaic


@mosaic.tessera
class Soak:
    def noop(self, x=None):
        return x

    def big(self, megabytes):
        return np.ones(int(megabytes * 1e6) // 8)

    def rss(self):
        gc.collect()
        return psutil.Process().memory_info().rss

    def take(self, refs):
        return len(refs)

    def call_all(self, proxies):
        return [p.noop() for p in proxies][-1]      # calls made here on borrowed tesserae

    def hosted(self):
        return len(mosaic.runtime().worker.hosts), len(mosaic.runtime().warehouse)


def head_rss():
    gc.collect()
    return psutil.Process().memory_info().rss


async def rss_all(probes):
    return [head_rss()] + [await p.rss().result() for p in probes]


async def settle(probes):
    # let batched drops reach the workers, then measure
    await asyncio.sleep(0.2)
    for p in probes:
        await p.noop()
    return await rss_all(probes)


def main_for(args):
    def count(n):
        return max(1, int(n * args.scale))

    async def small(tessera, n):
        done = 0
        while done < n:
            batch = min(10_000, n - done)
            tasks = [tessera.noop(i) for i in range(batch)]
            for t in tasks:
                await t
            del tasks
            done += batch

    async def big(members, n):
        for i in range(n):
            t = members[i % len(members)].big(8)
            await t
            if i % 10 == 0:
                assert (await t.result()).size == 1_000_000
            del t

    async def tesserae(n, workers):
        for i in range(n):
            p = Soak.remote(runtime=workers[i % len(workers)])
            await p.noop()
            del p

    async def passed(tessera, other, n):
        done = 0
        while done < n:
            batch = min(1_000, n - done)
            tasks = [tessera.noop(i) for i in range(batch)]
            assert await other.take(tasks).result() == batch
            del tasks
            done += batch

    async def passed_tesserae(other, n, workers):
        done = 0
        while done < n:
            batch = min(100, n - done)
            made = [Soak.remote(runtime=workers[i % len(workers)]) for i in range(batch)]
            last = await other.call_all(made).result()
            await last
            del made, last
            done += batch

    async def main(runtime):
        probes = [Soak.remote(runtime=w) for w in runtime.workers]
        for p in probes:
            await p
        target = Soak.remote(runtime=runtime.workers[0])
        phases = [('small tasks', lambda n: small(target, n), count(1_000_000)),
                  ('8 MB results', lambda n: big(probes, n), count(2_000)),
                  ('tesserae', lambda n: tesserae(n, runtime.workers), count(10_000)),
                  ('passed tasks', lambda n: passed(target, probes[-1], n), count(100_000)),
                  ('passed tess.', lambda n: passed_tesserae(probes[-1], n, runtime.workers),
                   count(2_000))]
        names = ['head'] + [w.uid for w in runtime.workers]
        worst = 0.0
        print(f'{"phase":<14}{"rank":<11}{"count":>10}{"RSS warm MB":>13}{"RSS end MB":>12}'
              f'{"growth MB":>11}{"seconds":>9}')
        for name, run, n in phases:
            if args.phases and name not in args.phases:
                continue
            await run(max(1, n // 20))                      # warm-up
            before = await settle(probes)
            start = time.perf_counter()
            await run(n)
            seconds = time.perf_counter() - start
            after = await settle(probes)
            for rank, (a, b) in enumerate(zip(before, after)):
                growth = (b - a) / 1e6
                worst = max(worst, growth)
                print(f'{name:<14}{names[rank]:<11}{n:>10,}{a / 1e6:>13.1f}{b / 1e6:>12.1f}'
                      f'{growth:>11.1f}{seconds:>9.1f}')
        hosted = [await p.hosted().result() for p in probes]
        print(f'left on the workers (tesserae, stored results): {hosted}')
        refs = getattr(runtime.client, 'refs', None)
        if refs is not None:
            print(f'reference updates received by the head: {refs.received:,}')
        print(f'largest growth: {worst:.1f} MB (limit {args.limit:g} MB)')
        return worst

    return main


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scale', type=float, default=1.0, help='fraction of every count')
    parser.add_argument('--limit', type=float, default=50.0, help='allowed growth, MB')
    parser.add_argument('--phases', nargs='*', default=None,
                        help="run only these phases (e.g. 'passed tasks' 'passed tess.')")
    args = parser.parse_args()
    worst = mosaic.run(main_for(args))
    if worst is not None and worst > args.limit:
        sys.exit(1)
