"""Publishing a large array to every worker: ``runtime.put(a, publish=True)`` against raw mpi4py
``comm.Bcast`` and W point-to-point sends of the same buffer, in one run.

Run::

    mpiexec -n 3 python bench/bench_publish.py            # 64 MiB to 2 workers, 5 reps
    mpiexec -n 3 python bench/bench_publish.py --quick    # 3 reps
    mpiexec -n 5 python bench/bench_publish.py --sizes 16,64   # 4 workers (oversubscribed)

Every rank runs this script. First the *raw* phase on ``COMM_WORLD`` (each timed on rank 0, from
the start until every worker has acknowledged with 1 byte, as ``put`` waits for every copy):

* Bcast: ``comm.Bcast(a, root=0)``, the workers receiving into a fresh ``np.empty`` each time (its
  pages first touched by the receive, as for any newly received array) and, as a second row, into
  one reused buffer (the MPI ceiling). MPICH busy-polls inside a blocking ``Bcast``, which
  oversubscribed ranks pay for; so a third row posts ``comm.Ibcast`` and tests it with
  ``os.sched_yield()`` between tests on every rank, as the runtime's progress threads do;
* W sends: rank 0 ``Isend``s the same array to each of the W workers at once and waits for them;
  each worker ``Recv``s into a fresh ``np.empty``.

Then ``mosaic.run(main)``, and the head measures, with one :class:`Bench` tessera per worker:

* publish: ``ref = await runtime.put(a, publish=True)`` (it returns once every rank holds its copy:
  one ``MPI_Ibcast`` on the runtime's broadcast communicator), then ``await ref.drop()``, untimed;
* W calls: ``await gather([p.consume(a) for p in tesserae])``: the same array sent to every worker
  as a call argument, W point-to-point transfers through the runtime.

Figures are medians over ``--reps`` after one warm-up, in ms. The ratio column is mosaic_mpi / raw
(above 1: slower). The last row compares publishing with the runtime's own W calls.
"""

import argparse
import os
import time

import numpy as np
from mpi4py import MPI

import mosaic_mpi as mosaic
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
    parser.add_argument('--quick', action='store_true', help='3 reps')
    parser.add_argument('--sizes', default='64', help='comma-separated sizes in MiB (default 64)')
    parser.add_argument('--reps', type=int, default=None,
                        help='timed repetitions after one warm-up (default 5; --quick 3)')
    parser.add_argument('--json', metavar='PATH', default=None, help='also write results as JSON')
    add_experiment_options(parser)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(',') if s.strip()]
    if args.reps is None:
        args.reps = 3 if args.quick else 5
    return args


# -- raw mpi4py phase (every rank) -------------------------------------------------------------------

def _acknowledged(comm, workers):
    """Rank 0: wait for a 1-byte acknowledgement from every worker."""
    ack = np.zeros(1, dtype=np.uint8)
    for rank in workers:
        comm.Recv(ack, rank)


def _bcast(comm, array, count, reps, fresh=True):
    """``comm.Bcast`` from rank 0, acknowledged by every worker; seconds on rank 0."""
    rank, size = comm.Get_rank(), comm.Get_size()
    workers = range(1, size)
    ack = np.zeros(1, dtype=np.uint8)
    reused = np.ones(count, dtype=np.float64) if rank != 0 and not fresh else None
    samples = []
    for _ in range(reps + 1):
        idle_barrier(comm)
        if rank == 0:
            start = time.perf_counter()
            comm.Bcast(array, root=0)
            _acknowledged(comm, workers)
            samples.append(time.perf_counter() - start)
        else:
            buffer = np.empty(count, dtype=np.float64) if fresh else reused
            comm.Bcast(buffer, root=0)
            comm.Send(ack, 0)
            del buffer
    return samples[1:] if rank == 0 else None


def _ibcast(comm, array, count, reps):
    """``comm.Ibcast`` from rank 0 into reused buffers, every rank testing it with
    ``os.sched_yield()`` between tests (as the runtime's progress threads do), acknowledged."""
    rank, size = comm.Get_rank(), comm.Get_size()
    ack = np.zeros(1, dtype=np.uint8)
    buffer = array if rank == 0 else np.ones(count, dtype=np.float64)
    samples = []
    for _ in range(reps + 1):
        idle_barrier(comm)
        start = time.perf_counter()
        request = comm.Ibcast(buffer, root=0)
        while not request.Test():
            os.sched_yield()
        if rank == 0:
            _acknowledged(comm, range(1, size))
            samples.append(time.perf_counter() - start)
        else:
            comm.Send(ack, 0)
    return samples[1:] if rank == 0 else None


def _sends(comm, array, count, reps):
    """Rank 0 ``Isend``s ``array`` to every worker at once, acknowledged; seconds on rank 0."""
    rank, size = comm.Get_rank(), comm.Get_size()
    workers = range(1, size)
    ack = np.zeros(1, dtype=np.uint8)
    samples = []
    for _ in range(reps + 1):
        idle_barrier(comm)
        if rank == 0:
            start = time.perf_counter()
            MPI.Request.Waitall([comm.Isend(array, w) for w in workers])
            _acknowledged(comm, workers)
            samples.append(time.perf_counter() - start)
        else:
            buffer = np.empty(count, dtype=np.float64)
            comm.Recv(buffer, 0)
            comm.Send(ack, 0)
            del buffer
    return samples[1:] if rank == 0 else None


def raw_phase(args):
    """Raw timings for every size, on every rank.

    Parameters
    ----------
    args : argparse.Namespace
        Options.

    Returns
    -------
    dict
        On rank 0: ``{(kind, mib): seconds list}`` for kinds ``bcast``, ``bcast-reused``,
        ``ibcast``, ``sends``. Empty elsewhere.
    """
    comm = MPI.COMM_WORLD
    results = {}
    for mib in args.sizes:
        count = mib * MIB // 8
        array = np.ones(count, dtype=np.float64) if comm.Get_rank() == 0 else None
        results[('bcast', mib)] = _bcast(comm, array, count, args.reps)
        results[('bcast-reused', mib)] = _bcast(comm, array, count, args.reps, fresh=False)
        results[('ibcast', mib)] = _ibcast(comm, array, count, args.reps)
        results[('sends', mib)] = _sends(comm, array, count, args.reps)
        del array
    idle_barrier(comm)
    return results if comm.Get_rank() == 0 else {}


# -- mosaic_mpi phase (head) -------------------------------------------------------------------------

async def mosaic_publish(runtime, array, reps):
    """Time ``await runtime.put(array, publish=True)`` (the drop after it untimed).

    Parameters
    ----------
    runtime : Runtime
        The head's runtime.
    array : numpy.ndarray
        Published each time.
    reps : int
        Timed repetitions (after one warm-up).

    Returns
    -------
    list of float
        Seconds per publish.
    """
    samples = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        ref = await runtime.put(array, publish=True)
        samples.append(time.perf_counter() - start)
        await ref.drop()
    return samples[1:]


async def mosaic_calls(tesserae, array, reps):
    """Time ``await gather([p.consume(array) for p in tesserae])``.

    Parameters
    ----------
    tesserae : list of TesseraProxy
        One :class:`Bench` per worker.
    array : numpy.ndarray
        Sent to each.
    reps : int
        Timed repetitions (after one warm-up).

    Returns
    -------
    list of float
        Seconds per round of W calls.
    """
    samples = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        sizes = await mosaic.gather([p.consume(array).result() for p in tesserae])
        samples.append(time.perf_counter() - start)
        assert sizes == [array.nbytes] * len(tesserae)
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
        W = runtime.num_workers
        tesserae = [Bench.remote(runtime=w) for w in runtime.workers]
        await mosaic.gather(tesserae)
        table = Table(f'publish to {W} workers, float64 arrays, median of {args.reps} ms '
                      f'({W + 1} ranks)')
        for mib in args.sizes:
            array = np.ones(mib * MIB // 8, dtype=np.float64)
            publish = summary(await mosaic_publish(runtime, array, args.reps))['median']
            calls = summary(await mosaic_calls(tesserae, array, args.reps))['median']
            bcast = summary(raw[('bcast', mib)])['median']
            reused = summary(raw[('bcast-reused', mib)])['median']
            ibcast = summary(raw[('ibcast', mib)])['median']
            sends = summary(raw[('sends', mib)])['median']
            table.add(f'{mib} MiB: put(a, publish=True) vs comm.Bcast', 'ms', publish * 1e3,
                      bcast * 1e3, note='raw receives into a fresh np.empty')
            table.add('  same, raw Bcast into a reused buffer', 'ms', publish * 1e3,
                      reused * 1e3, note='the MPI ceiling')
            table.add('  same, raw Ibcast polled with sched_yield', 'ms', publish * 1e3,
                      ibcast * 1e3, note='reused buffers; how the runtime drives it')
            table.add(f'  same vs {W} raw Isends of the buffer', 'ms', publish * 1e3,
                      sends * 1e3)
            table.add(f'{mib} MiB: {W} calls p.consume(a) vs {W} raw Isends', 'ms', calls * 1e3,
                      sends * 1e3, note='point to point through the runtime')
            table.add(f'{mib} MiB: publish vs those {W} calls', 'ms', publish * 1e3, calls * 1e3,
                      note='raw column: the runtime\'s W calls')
            del array
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
                          'run under mpiexec -n 3 (or more: 1 head + W workers)',
                          load=os.getloadavg()[0])
    if table is not None:
        table.print()
        write_json(args.json, 'publish', [table], vars(args))


if __name__ == '__main__':
    main_all()
