"""Round-trip latency and pipelined call rate: mosaic_mpi against raw mpi4py, in one run.

Run::

    mpiexec -n 2 python bench/bench_latency.py            # one worker
    mpiexec -n 3 python bench/bench_latency.py            # adds two workers, tesserae alternating
    mpiexec -n 2 python bench/bench_latency.py --quick    # fewer calls (about 10 s)

Every rank runs this script. First the *raw* phase runs on ``COMM_WORLD`` on every rank:

* ping-pong: rank 0 ``comm.send(None, 1)`` then ``comm.recv(source=1)``, rank 1 the reverse; the
  median of the per-iteration times is the round trip;
* pipelined: rank 0 ``comm.isend``s N small pickled messages (alternating between ranks 1 and 2
  for the two-worker figure), every worker ``comm.send``s a reply to each, rank 0 receives the N
  replies and waits for its sends; N / elapsed is the rate.

Then ``mosaic.run(main)`` starts the runtime (on its own duplicate of ``COMM_WORLD``) and the head
measures the same things through tesserae:

* round trip: ``await p.noop().result()`` one at a time, median over ``--calls`` after
  ``--warmup`` calls (also ``await p.noop()``, completion only, as a second row);
* pipelined: N calls ``p.noop()`` submitted in a loop, then the last one's result awaited and all
  of them gathered; N / elapsed is the rate, and the submit loop alone is reported per call.

The ratio column is mosaic_mpi / raw mpi4py.
"""

import argparse
import cProfile
import io
import pstats
import time

from mpi4py import MPI

import mosaic_mpi as mosaic
from _common import (Bench, Table, add_experiment_options, cpu_seconds, idle_barrier,
                     run_benchmark, summary, thread_cpu_seconds, write_json)


def parse_args(argv=None):
    """Command-line options.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
        The options, with ``--quick`` already applied to the defaults.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer calls: 500 round trips, 10,000 pipelined calls')
    parser.add_argument('--calls', type=int, default=None,
                        help='timed round trips (default 2000; --quick 500)')
    parser.add_argument('--warmup', type=int, default=200, help='untimed round trips first')
    parser.add_argument('--pipelined', type=int, default=None,
                        help='pipelined calls N (default 100,000; --quick 10,000)')
    parser.add_argument('--profile', metavar='PATH', default=None,
                        help='cProfile the head\'s main thread during the one-worker pipelined '
                             'phase; stats go to PATH and the top entries are printed')
    parser.add_argument('--json', metavar='PATH', default=None, help='also write results as JSON')
    add_experiment_options(parser)
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = 500 if args.quick else 2000
    if args.pipelined is None:
        args.pipelined = 10_000 if args.quick else 100_000
    return args


# -- raw mpi4py phase (every rank) -------------------------------------------------------------------

def raw_ping_pong(comm, calls, warmup):
    """Pickle ping-pong between ranks 0 and 1 (other ranks wait without spinning).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Communicator (``COMM_WORLD``).
    calls, warmup : int
        Timed and untimed round trips.

    Returns
    -------
    samples : list of float or None
        Seconds per round trip, on rank 0; ``None`` elsewhere.
    cpu : float or None
        CPU us per round trip of ranks 0 and 1 together (process time), on rank 0.
    """
    rank = comm.Get_rank()
    samples = None
    cpu = time.process_time()
    if rank == 0:
        samples = []
        clock = time.perf_counter
        for i in range(warmup + calls):
            start = clock()
            comm.send(None, 1)
            comm.recv(source=1)
            if i >= warmup:
                samples.append(clock() - start)
    elif rank == 1:
        for _ in range(warmup + calls):
            comm.recv(source=0)
            comm.send(None, 0)
    cpu = (time.process_time() - cpu) / (warmup + calls) * 1e6
    cpu = comm.reduce(cpu if rank <= 1 else 0.0, root=0)
    idle_barrier(comm)
    return samples, cpu


def raw_pipelined(comm, count, workers):
    """Rank 0 ``isend``s ``count`` small pickled messages, workers reply to each.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Communicator (``COMM_WORLD``).
    count : int
        Messages (calls).
    workers : int
        1 (all to rank 1) or 2 (alternating between ranks 1 and 2).

    Returns
    -------
    float or None
        Elapsed seconds on rank 0 (first send to last reply); ``None`` elsewhere.
    """
    rank = comm.Get_rank()
    elapsed = None
    idle_barrier(comm)
    if rank == 0:
        start = time.perf_counter()
        requests = [comm.isend(i, 1 + (i % workers)) for i in range(count)]
        for _ in range(count):
            comm.recv(source=MPI.ANY_SOURCE)
        MPI.Request.waitall(requests)
        elapsed = time.perf_counter() - start
    elif rank <= workers:
        mine = count // workers + (1 if rank - 1 < count % workers else 0)
        for _ in range(mine):
            comm.recv(source=0)
            comm.send(None, 0)
    idle_barrier(comm)
    return elapsed


def raw_phase(args):
    """Run the raw mpi4py measurements on every rank.

    Parameters
    ----------
    args : argparse.Namespace
        Options.

    Returns
    -------
    dict
        On rank 0: ``ping_pong`` (seconds list), ``pipelined_1`` and, with 3+ ranks,
        ``pipelined_2`` (elapsed seconds). Empty elsewhere.
    """
    comm = MPI.COMM_WORLD
    ping_pong, ping_pong_cpu = raw_ping_pong(comm, args.calls, args.warmup)
    out = {'ping_pong': ping_pong, 'ping_pong_cpu': ping_pong_cpu,
           'pipelined_1': raw_pipelined(comm, args.pipelined, 1)}
    if comm.Get_size() >= 3:
        out['pipelined_2'] = raw_pipelined(comm, args.pipelined, 2)
    return out if comm.Get_rank() == 0 else {}


# -- mosaic_mpi phase (head) -------------------------------------------------------------------------

async def round_trips(proxy, calls, warmup, fetch=True):
    """Time calls awaited one at a time.

    Parameters
    ----------
    proxy : TesseraProxy
        A :class:`Bench` tessera.
    calls, warmup : int
        Timed and untimed calls.
    fetch : bool
        ``await p.noop().result()`` if true, else ``await p.noop()`` (completion only).

    Returns
    -------
    list of float
        Seconds per call.
    """
    samples = []
    clock = time.perf_counter
    for i in range(warmup + calls):
        start = clock()
        if fetch:
            await proxy.noop().result()
        else:
            await proxy.noop()
        if i >= warmup:
            samples.append(clock() - start)
    return samples


async def pipelined(proxies, count, profile=None):
    """Submit ``count`` no-op calls round-robin over ``proxies``, then await them all.

    Parameters
    ----------
    proxies : list of TesseraProxy
        Targets, used in turn.
    count : int
        Calls.
    profile : cProfile.Profile, optional
        Enabled around the measured part.

    Returns
    -------
    submit : float
        Seconds spent in the submit loop.
    total : float
        Seconds from the first submit to the last result and gather.
    """
    width = len(proxies)
    if profile is not None:
        profile.enable()
    start = time.perf_counter()
    if width == 1:
        method = proxies[0].noop
        tasks = [method() for _ in range(count)]
    else:
        tasks = [proxies[i % width].noop() for i in range(count)]
    submitted = time.perf_counter()
    for task in tasks[-width:]:
        await task.result()
    await mosaic.gather(tasks)
    total = time.perf_counter() - start
    if profile is not None:
        profile.disable()
    del tasks
    # Let the drops of those results reach the workers before the next measurement.
    for proxy in proxies:
        await proxy.noop().result()
    return submitted - start, total


def make_main(args, raw):
    """The ``main`` the head runs under ``mosaic.run``.

    Parameters
    ----------
    args : argparse.Namespace
        Options.
    raw : dict
        Results of :func:`raw_phase` on rank 0.

    Returns
    -------
    coroutine function
        ``main(runtime)``, returning the list of result tables.
    """
    async def main(runtime):
        workers = runtime.workers
        first = Bench.remote(runtime=workers[0])
        await first
        rt_cpu = {}
        for fetch in (True, False):
            head_cpu, (worker_cpu, _) = cpu_seconds(), await first.cpu().result()
            samples = await round_trips(first, args.calls, args.warmup, fetch=fetch)
            head_end, (worker_end, _) = cpu_seconds(), await first.cpu().result()
            calls = args.calls + args.warmup + 1        # the cpu() call itself is a round trip
            rt_cpu[fetch] = ((head_end - head_cpu) / calls * 1e6,
                             (worker_end - worker_cpu) / calls * 1e6)
            if fetch:
                rt_result = summary(samples)
            else:
                rt_wait = summary(samples)
        await pipelined([first], min(1000, args.pipelined))            # warm-up
        profile = cProfile.Profile() if args.profile else None
        head_before, worker_before = thread_cpu_seconds(), await first.thread_cpu().result()
        submit_1, total_1 = await pipelined([first], args.pipelined, profile)
        head_after, worker_after = thread_cpu_seconds(), await first.thread_cpu().result()
        if profile is not None:
            profile.dump_stats(args.profile)
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats('tottime').print_stats(20)
            print(text.getvalue(), flush=True)

        raw_rt = summary(raw['ping_pong'])
        n = args.pipelined
        table = Table(f'latency and pipelined calls ({runtime.num_workers + 1} ranks)')
        table.add('round trip, await p.noop().result() (median)', 'us',
                  rt_result['median'] * 1e6, raw_rt['median'] * 1e6,
                  note=f'p10/p90 mosaic {rt_result["p10"] * 1e6:.0f}/{rt_result["p90"] * 1e6:.0f} '
                       f'raw {raw_rt["p10"] * 1e6:.1f}/{raw_rt["p90"] * 1e6:.1f}')
        table.add('round trip, await p.noop() (median)', 'us', rt_wait['median'] * 1e6,
                  raw_rt['median'] * 1e6, note='completion only, no fetch')
        for fetch, label in ((True, 'await p.noop().result()'), (False, 'await p.noop()')):
            head_us, worker_us = rt_cpu[fetch]
            table.add(f'CPU per round trip, {label}, head + worker', 'us', head_us + worker_us,
                      raw['ping_pong_cpu'], note=f'head {head_us:.1f}, worker {worker_us:.1f} '
                      f'(process CPU, all threads; raw: both ranks)')
        table.add(f'pipelined, 1 worker, N={n:,}', 'calls/s', n / total_1,
                  n / raw['pipelined_1'],
                  note=f'mosaic submit {submit_1 / n * 1e6:.1f} us/call')
        cpu = [f'{where} {name}: {(after[name] - before.get(name, 0.0)) / n * 1e6:.1f}'
               for where, before, after in (('head', head_before, head_after),
                                            ('worker', worker_before, worker_after))
               for name in sorted(after) if after[name] - before.get(name, 0.0) > 0]
        table.cpu_note = ('CPU us per call, 1-worker pipelined phase (thread CPU time / N, '
                          'includes gathering and the drops after): ' + '; '.join(cpu))
        if len(workers) >= 2:
            second = Bench.remote(runtime=workers[1])
            await second
            await pipelined([first, second], min(1000, n))
            submit_2, total_2 = await pipelined([first, second], n)
            table.add(f'pipelined, 2 workers alternating, N={n:,}', 'calls/s', n / total_2,
                      n / raw['pipelined_2'],
                      note=f'mosaic submit {submit_2 / n * 1e6:.1f} us/call')
        return [table]
    return main


def main_all(argv=None):
    """Entry point on every rank: raw phase, then the runtime.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    args = parse_args(argv)
    tables = run_benchmark(args, lambda comm: raw_phase(args), make_main,
                           'run under mpiexec -n 2 (or -n 3 for the two-worker figure)')
    if tables is not None:
        for table in tables:
            table.print()
            if getattr(table, 'cpu_note', None):
                print(table.cpu_note, flush=True)
        write_json(args.json, 'latency', tables,
                   dict(vars(args), cpu_note=getattr(tables[0], 'cpu_note', None)))


if __name__ == '__main__':
    main_all()
