"""Bandwidth of large float64 arrays: mosaic_mpi against raw mpi4py ``Send``/``Recv``, in one run.

Run::

    mpiexec -n 3 python bench/bench_bandwidth.py            # 64 and 256 MiB, 5 reps (in, out, forward)
    mpiexec -n 3 python bench/bench_bandwidth.py --quick    # 64 MiB, 3 reps
    mpiexec -n 2 python bench/bench_bandwidth.py            # in and out only (forward needs 2 workers)

Every rank runs this script. First the *raw* phase on ``COMM_WORLD`` (ranks not taking part wait
in a sleeping barrier so they leave the cores free), each direction timed on the rank that
starts it and including a 1-byte acknowledgement, like a mosaic call:

* in: rank 0 ``Send``s the array, rank 1 ``Recv``s it into a fresh ``np.empty`` and acknowledges;
* out: rank 0 asks with 1 byte, rank 1 ``Send``s, rank 0 ``Recv``s into a fresh ``np.empty``;
* forward: the same as *in*, between ranks 1 and 2.

Each raw direction is measured twice: receiving into a fresh ``np.empty`` every time (the
receiver's pages are first touched by the receive, as they are in mosaic_mpi, which allocates the
arrays it receives), and into one reused buffer (the MPI ceiling). Ratios are given against both.

Then ``mosaic.run(main)`` and the head measures, with tessera ``p`` on worker 1 and ``q`` on
worker 2:

* in: ``await p.consume(a)`` (``consume`` returns ``a.nbytes``);
* out: ``t = p.produce(n); await t`` untimed, then ``await t.result()`` timed;
* forward: ``t = p.produce(n); await t`` untimed, then ``await q.consume(t)`` timed (the array
  moves worker 1 to worker 2; the head only sees the completion).

Figures are medians over ``--reps`` after one warm-up, in GB/s (1 GB = 1e9 bytes). The ratio
column is mosaic_mpi / raw mpi4py (the target is >= 0.5, aim 0.7).
"""

import argparse
import os
import time

import numpy as np
from mpi4py import MPI

from _common import (Bench, Table, add_experiment_options, idle_barrier, run_benchmark, summary,
                     write_json)

MIB = 1 << 20


def parse_args(argv=None):
    """Command-line options.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
        The options, with ``--quick`` applied (``sizes`` is a list of MiB).
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='64 MiB only, 3 reps')
    parser.add_argument('--sizes', default=None,
                        help='comma-separated sizes in MiB (default 64,256; --quick 64)')
    parser.add_argument('--reps', type=int, default=None,
                        help='timed repetitions after one warm-up (default 5; --quick 3)')
    parser.add_argument('--json', metavar='PATH', default=None, help='also write results as JSON')
    add_experiment_options(parser)
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = '64' if args.quick else '64,256'
    args.sizes = [int(s) for s in args.sizes.split(',') if s.strip()]
    if args.reps is None:
        args.reps = 3 if args.quick else 5
    return args


# -- raw mpi4py phase (every rank) -------------------------------------------------------------------

def _push(comm, source, dest, array, reps, fresh=True):
    """``source`` Sends ``array`` to ``dest`` reps + 1 times, each acknowledged; times on source.

    With ``fresh`` the receiver allocates a new ``np.empty`` each time (its pages are first
    touched by the receive, as in mosaic_mpi); otherwise it reuses one buffer (the MPI ceiling).
    """
    rank = comm.Get_rank()
    ack = np.zeros(1, dtype=np.uint8)
    samples = []
    reused = np.ones(array.size, dtype=np.float64) if rank == dest and not fresh else None
    for _ in range(reps + 1):
        idle_barrier(comm)
        if rank == source:
            start = time.perf_counter()
            comm.Send(array, dest)
            comm.Recv(ack, dest)
            samples.append(time.perf_counter() - start)
        elif rank == dest:
            buffer = np.empty(array.size, dtype=np.float64) if fresh else reused
            comm.Recv(buffer, source)
            comm.Send(ack, source)
            del buffer
    return samples[1:] if rank == source else None


def _pull(comm, array, reps, fresh=True):
    """Rank 0 asks rank 1 for ``array`` reps + 1 times; times on rank 0.

    ``fresh`` as in :func:`_push` (rank 0 receives).
    """
    rank = comm.Get_rank()
    ask = np.zeros(1, dtype=np.uint8)
    samples = []
    reused = np.ones(array.size, dtype=np.float64) if rank == 0 and not fresh else None
    for _ in range(reps + 1):
        idle_barrier(comm)
        if rank == 0:
            start = time.perf_counter()
            comm.Send(ask, 1)
            buffer = np.empty(array.size, dtype=np.float64) if fresh else reused
            comm.Recv(buffer, 1)
            samples.append(time.perf_counter() - start)
            del buffer
        elif rank == 1:
            comm.Recv(ask, 0)
            comm.Send(array, 0)
    return samples[1:] if rank == 0 else None


def _to_head(comm, source, value):
    """Bring ``value`` from rank ``source`` to rank 0 without spinning; ``None`` elsewhere."""
    rank = comm.Get_rank()
    idle_barrier(comm)
    if rank == source:
        comm.send(value, 0)
    elif rank == 0:
        request = comm.irecv(source=source)
        while True:
            done, value = request.test()
            if done:
                return value
            time.sleep(1e-3)
    return None


def raw_phase(args):
    """Raw ``Send``/``Recv`` timings for every size, on every rank.

    Parameters
    ----------
    args : argparse.Namespace
        Options.

    Returns
    -------
    dict
        On rank 0: ``{(direction, mib, fresh): seconds list}`` for ``in``, ``out`` and (3+ ranks)
        ``forward``, ``fresh`` telling whether the receiver used a new ``np.empty`` each time.
        Empty elsewhere.
    """
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    results = {}
    for mib in args.sizes:
        count = mib * MIB // 8
        array = np.ones(count, dtype=np.float64) if rank in (0, 1, 2) else None
        for fresh in (True, False):
            results[('in', mib, fresh)] = _push(comm, 0, 1, array, args.reps, fresh)
            results[('out', mib, fresh)] = _pull(comm, array, args.reps, fresh)
            if size >= 3:
                forward = _push(comm, 1, 2, array, args.reps, fresh)
                results[('forward', mib, fresh)] = _to_head(comm, 1, forward)
        del array
    idle_barrier(comm)
    return results if rank == 0 else {}


# -- mosaic_mpi phase (head) -------------------------------------------------------------------------

async def mosaic_in(proxy, array, reps):
    """Time ``await proxy.consume(array)``.

    Parameters
    ----------
    proxy : TesseraProxy
        A :class:`Bench` tessera.
    array : numpy.ndarray
        Sent each time.
    reps : int
        Timed repetitions (after one warm-up).

    Returns
    -------
    list of float
        Seconds per call.
    """
    samples = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        await proxy.consume(array)
        samples.append(time.perf_counter() - start)
    return samples[1:]


async def mosaic_out(proxy, count, reps):
    """Time fetching the result of ``proxy.produce(count)``, once it has finished.

    Parameters
    ----------
    proxy : TesseraProxy
        A :class:`Bench` tessera.
    count : int
        float64 elements.
    reps : int
        Timed repetitions (after one warm-up).

    Returns
    -------
    list of float
        Seconds per fetch.
    """
    samples = []
    for _ in range(reps + 1):
        task = proxy.produce(count)
        await task
        start = time.perf_counter()
        value = await task.result()
        samples.append(time.perf_counter() - start)
        assert value.size == count
        del value, task
    return samples[1:]


async def mosaic_forward(source, dest, count, reps):
    """Time ``await dest.consume(source.produce(count))`` once ``produce`` has finished.

    Parameters
    ----------
    source, dest : TesseraProxy
        :class:`Bench` tesserae on different workers.
    count : int
        float64 elements.
    reps : int
        Timed repetitions (after one warm-up).

    Returns
    -------
    list of float
        Seconds per forward.
    """
    samples = []
    for _ in range(reps + 1):
        produced = source.produce(count)
        await produced
        start = time.perf_counter()
        consumed = dest.consume(produced)
        await consumed
        samples.append(time.perf_counter() - start)
        del produced, consumed
    return samples[1:]


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
        ``main(runtime)``, returning the result table.
    """
    async def main(runtime):
        workers = runtime.workers
        first = Bench.remote(runtime=workers[0])
        second = Bench.remote(runtime=workers[1]) if len(workers) >= 2 else None
        await first
        if second is not None:
            await second
        table = Table(f'bandwidth, float64 arrays, median of {args.reps} '
                      f'({runtime.num_workers + 1} ranks)')

        def add(direction, mib, mosaic_samples, label):
            nbytes = mib * MIB
            m = summary(mosaic_samples)['median']
            r = summary(raw[(direction, mib, True)])['median']
            table.add(f'{mib} MiB {label}', 'GB/s', nbytes / m / 1e9, nbytes / r / 1e9,
                      note=f'mosaic {m * 1e3:.1f} ms, raw {r * 1e3:.1f} ms')
            r = summary(raw[(direction, mib, False)])['median']
            table.add('  same, raw into a reused buffer', 'GB/s', nbytes / m / 1e9,
                      nbytes / r / 1e9, note=f'raw {r * 1e3:.1f} ms (MPI ceiling)')

        for mib in args.sizes:
            count = mib * MIB // 8
            array = np.ones(count, dtype=np.float64)
            add('in', mib, await mosaic_in(first, array, args.reps),
                'in: await p.consume(a)')
            del array
            add('out', mib, await mosaic_out(first, count, args.reps),
                'out: await p.produce(n).result()')
            if second is not None:
                add('forward', mib, await mosaic_forward(first, second, count, args.reps),
                    'forward: q.consume(p.produce(n))')
        return table
    return main


def main_all(argv=None):
    """Entry point on every rank: raw phase, then the runtime.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    args = parse_args(argv)
    table = run_benchmark(args, lambda comm: raw_phase(args), make_main,
                          'run under mpiexec -n 3 (or -n 2 without the forward figure)',
                          load=os.getloadavg()[0])
    if table is not None:
        table.print()
        write_json(args.json, 'bandwidth', [table], vars(args))


if __name__ == '__main__':
    main_all()
