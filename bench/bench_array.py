"""What one call on an array of N tesserae costs the head, against N single calls, in one run.

Run::

    mpiexec -n 3 python bench/bench_array.py                # N = 8, 64, 256 members on 2 workers
    mpiexec -n 5 python bench/bench_array.py --sizes 16,128 --quick

For each N the head makes R rounds of each of three fan-outs on an array of N ``Bench``
members (member i on worker i mod W), each round awaited before the next:

* **array**: ``await arr.noop()`` (one call on the array, awaited as a whole);
* **array, one by one**: ``for t in arr.noop(): await t`` (every member gets a proxy of its own);
* **single calls**: ``for t in [m.noop() for m in arr]: await t``.

Reported: the head's CPU time (all its threads) per round and per member. The runtime runs with
``spin_time=0`` unless ``--spin-time`` says otherwise: the head then sleeps whenever it waits
instead of polling for 1 ms, so its CPU time is what it does for the calls and not how long it
waited for the workers (with polling, the head's CPU time follows the wall time, whatever it
does). A least-squares line through the N values splits each fan-out's cost into a part per
round and a part per member (``cost = a + b N``); the ratio that matters at scale is ``b`` of the
array call over ``b`` of the single calls.

Raw mpi4py reference, same run: rank 0 ``isend``s N small pickled messages round-robin to the W
workers and receives each answer, the same R rounds (:func:`raw_rounds`). Its blocking receives
poll, so its CPU time is close to its wall time: a reference for the pace, not a floor for the
head's work.
"""

import argparse
import time

import mosaic_mpi as mosaic
from _common import (Bench, Table, add_experiment_options, idle_barrier, run_benchmark,
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
    parser.add_argument('--sizes', default='8,64,256', help='comma-separated array sizes N')
    parser.add_argument('--members', type=int, default=20000,
                        help='member calls per fan-out and size (rounds R = this / N)')
    parser.add_argument('--quick', action='store_true', help='a quarter of the member calls')
    parser.add_argument('--json', metavar='PATH', default=None, help='also write results as JSON')
    add_experiment_options(parser)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(',') if s.strip()]
    if args.quick:
        args.members //= 4
    if args.spin_time is None:
        args.spin_time = 0.0
    return args


def fit(points):
    """Least-squares line through ``(n, cost)`` points.

    Parameters
    ----------
    points : list of (float, float)
        Array size and cost per round (µs).

    Returns
    -------
    (float, float)
        ``(a, b)``: µs per round and µs per member.
    """
    count = len(points)
    mean_n = sum(n for n, _ in points) / count
    mean_c = sum(c for _, c in points) / count
    spread = sum((n - mean_n) ** 2 for n, _ in points)
    if spread == 0:
        return mean_c, 0.0
    b = sum((n - mean_n) * (c - mean_c) for n, c in points) / spread
    return mean_c - b * mean_n, b


def raw_rounds(comm, size, rounds):
    """Rank 0 ``isend``s ``size`` pickled messages round-robin to the workers, receives every
    reply, ``rounds`` times; returns rank 0's CPU µs per round (``None`` elsewhere).

    MPICH's blocking receives poll, so this CPU time is close to the wall time.
    """
    from mpi4py import MPI
    rank, workers = comm.Get_rank(), comm.Get_size() - 1
    idle_barrier(comm)
    if rank == 0:
        start = time.process_time()
        for _ in range(rounds):
            requests = [comm.isend(i, 1 + i % workers) for i in range(size)]
            for _ in range(size):
                comm.recv(source=MPI.ANY_SOURCE)
            MPI.Request.waitall(requests)
        return (time.process_time() - start) / rounds * 1e6
    mine = size // workers + (1 if rank - 1 < size % workers else 0)
    for _ in range(rounds * mine):
        comm.recv(source=0)
        comm.send(None, 0)
    return None


async def _rounds(fan_out, rounds):
    start = time.process_time()
    for _ in range(rounds):
        await fan_out()
    return (time.process_time() - start) / rounds * 1e6


def make_main(args, raw):
    """The ``main`` the head runs under ``mosaic.run``.

    Parameters
    ----------
    args : argparse.Namespace
        Options.
    raw : dict
        ``{size: head CPU µs per round}`` of the raw phase (rank 0).

    Returns
    -------
    coroutine function
        ``main(runtime)``, returning ``(table, results)``.
    """
    async def main(runtime):
        workers = runtime.num_workers
        table = Table(f'head CPU per array call vs N single calls ({workers} workers, '
                      f'spin_time={args.spin_time:g} s)')
        results = {'array': [], 'each': [], 'single': [], 'raw': []}
        for size in args.sizes:
            arr = Bench.remote(len=size)
            await arr
            members = list(arr)

            async def whole():
                await arr.noop()

            async def each():
                for t in arr.noop():
                    await t

            async def single():
                for t in [m.noop() for m in members]:
                    await t

            rounds = max(3, args.members // size)
            for fan_out in (whole, each, single):      # warm-up
                await _rounds(fan_out, max(2, rounds // 10))
            costs = {name: await _rounds(fan_out, rounds)
                     for name, fan_out in (('array', whole), ('each', each), ('single', single))}
            for name, cost in costs.items():
                results[name].append((size, cost))
            results['raw'].append((size, raw[size]))
            table.add(f'N={size}: array call', 'us/member', costs['array'] / size,
                      raw[size] / size,
                      note=f'{costs["array"]:,.0f} us per call; single calls: ratio '
                           f'{costs["array"] / costs["single"]:.2f}')
            table.add(f'N={size}: array, members one by one', 'us/member', costs['each'] / size,
                      raw[size] / size,
                      note=f'single calls: ratio {costs["each"] / costs["single"]:.2f}')
            table.add(f'N={size}: N single calls', 'us/member', costs['single'] / size,
                      raw[size] / size, note=f'{rounds} rounds')
            del arr, members
        if len(args.sizes) >= 2:
            lines = {name: fit(points) for name, points in results.items()}
            b_single = lines['single'][1]
            for name, label in (('array', 'array call'), ('each', 'array, one by one'),
                                ('single', 'single calls')):
                a, b = lines[name]
                table.add(f'fit {label}: per member (b)', 'us', b, lines['raw'][1],
                          note=f'per round (a) {a:,.0f} us; b / b of single calls '
                               f'{b / b_single:.2f}' if b_single else '')
            results['fit'] = lines
        return table, results
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
        workers = comm.Get_size() - 1
        raw_pipelined(comm, 300, workers)           # warm-up
        return {size: raw_rounds(comm, size, max(3, args.members // size))
                for size in args.sizes}

    outcome = run_benchmark(args, raw_phase, make_main, 'run under mpiexec -n 3 (or more)')
    if outcome is not None:
        table, results = outcome
        table.print()
        write_json(args.json, 'array', [table], {'options': vars(args), 'results': results})


if __name__ == '__main__':
    main_all()
