"""Cost per call as the number of queued calls grows: mosaic_mpi against raw mpi4py, in one run.

Run::

    mpiexec -n 2 python bench/bench_scale.py            # 10k and 100k calls
    mpiexec -n 2 python bench/bench_scale.py --full     # adds 1M calls (several minutes, ~GBs)
    mpiexec -n 2 python bench/bench_scale.py --sizes 1000,10000

For each size N the head submits N no-op calls ``p.noop()`` to one tessera in a loop, then awaits
the last one's result and gathers them all. Reported per call: the submit loop alone, and the whole
thing (submit to last result). A runtime without super-linear costs keeps both flat as N grows;
the per-tenth submit times of the largest size show whether submitting slows down as the queue
fills. The head's resident memory growth per queued call is reported as well.

Raw mpi4py does the same transfer: rank 0 ``comm.isend``s N small pickled messages, rank 1
``comm.send``s a reply to each, rank 0 receives all N (see ``bench_latency.raw_pipelined``).
The ratio column is mosaic_mpi / raw mpi4py.
"""

import argparse
import time


import mosaic_mpi as mosaic
from _common import (Bench, GcClock, Table, add_experiment_options, run_benchmark,
                     write_json)
from bench_latency import raw_pipelined


def parse_args(argv=None):
    """Command-line options.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
        The options; ``sizes`` is a list of ints.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default=None,
                        help='comma-separated numbers of calls (default 10000,100000)')
    parser.add_argument('--full', action='store_true', help='add 1,000,000 calls')
    parser.add_argument('--quick', action='store_true', help='1000 and 10000 calls')
    parser.add_argument('--json', metavar='PATH', default=None, help='also write results as JSON')
    add_experiment_options(parser)
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = '1000,10000' if args.quick else '10000,100000'
    args.sizes = [int(s) for s in args.sizes.split(',') if s.strip()]
    if args.full and 1_000_000 not in args.sizes:
        args.sizes.append(1_000_000)
    return args


def rss_bytes():
    """Resident memory of this process.

    Returns
    -------
    int
        Bytes.
    """
    import psutil
    return psutil.Process().memory_info().rss


async def submit_and_wait(proxy, count):
    """Submit ``count`` no-op calls, then await the last result and gather all.

    Parameters
    ----------
    proxy : TesseraProxy
        A :class:`Bench` tessera.
    count : int
        Calls.

    Returns
    -------
    dict
        ``submit`` and ``total`` seconds, ``tenths`` (seconds of each tenth of the submit loop)
        and ``rss`` (head memory growth in bytes while the calls were queued).
    """
    method = proxy.noop
    collections = GcClock()
    await proxy.start_gc_clock()
    step = max(1, count // 10)
    tasks = []
    append = tasks.append
    marks = []
    rss = rss_bytes()
    clock = time.perf_counter
    start = clock()
    for i in range(count):
        if i % step == 0:
            marks.append(clock())
        append(method())
    submitted = clock()
    grown = rss_bytes() - rss
    await tasks[-1].result()
    await mosaic.gather(tasks)
    total = clock() - start
    gc_seconds, gc_full = collections.stop()
    worker_gc, worker_full = await proxy.stop_gc_clock().result()
    marks.append(submitted)
    del tasks
    await proxy.noop().result()     # let the drops of those results reach the worker
    return {'submit': submitted - start, 'total': total, 'rss': grown, 'gc': gc_seconds,
            'gc_full': gc_full, 'worker_gc': worker_gc, 'worker_gc_full': worker_full, 'tenths': [b - a for a, b in zip(marks, marks[1:])]}


def make_main(args, raw):
    """The ``main`` the head runs under ``mosaic.run``.

    Parameters
    ----------
    args : argparse.Namespace
        Options.
    raw : dict
        ``{size: elapsed seconds}`` of the raw phase (rank 0).

    Returns
    -------
    coroutine function
        ``main(runtime)``, returning ``(table, tenths text)``.
    """
    async def main(runtime):
        proxy = Bench.remote(runtime=runtime.workers[0])
        await proxy
        await submit_and_wait(proxy, 1000)          # warm-up
        table = Table('per-call cost vs number of queued calls (1 worker)')
        tenths = ''
        for count in args.sizes:
            result = await submit_and_wait(proxy, count)
            table.add(f'N={count:,}: submit loop', 'us/call', result['submit'] / count * 1e6,
                      None, note=f'head RSS +{result["rss"] / count:.0f} B/queued call')
            table.add(f'N={count:,}: in the cyclic GC (head, main + progress)', 'us/call',
                      result['gc'] / count * 1e6, None,
                      note=f'{result["gc_full"]} full collections')
            table.add(f'N={count:,}: in the cyclic GC (worker)', 'us/call',
                      result['worker_gc'] / count * 1e6, None,
                      note=f'{result["worker_gc_full"]} full collections')
            table.add(f'N={count:,}: submit -> all done', 'us/call', result['total'] / count * 1e6,
                      raw[count] / count * 1e6,
                      note=f'{count / result["total"]:,.0f} calls/s, raw '
                           f'{count / raw[count]:,.0f}')
            tenths = ' '.join(f'{t / max(1, count // 10) * 1e6:.1f}' for t in result['tenths'])
            tenths = f'submit us/call in each tenth of N={count:,}: {tenths}'
        return table, tenths
    return main


def main_all(argv=None):
    """Entry point on every rank: raw phase, then the runtime.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    args = parse_args(argv)

    def raw_phase(comm):
        raw_pipelined(comm, 1000, 1)                # warm-up
        return {count: raw_pipelined(comm, count, 1) for count in args.sizes}

    outcome = run_benchmark(args, raw_phase, make_main, 'run under mpiexec -n 2')
    if outcome is not None:
        table, tenths = outcome
        table.print()
        print(tenths, flush=True)
        write_json(args.json, 'scale', [table], {'options': vars(args), 'tenths': tenths})


if __name__ == '__main__':
    main_all()
