"""Summing a 64 MiB gradient over 2 and 3 members: a collective array's Allreduce, gathering on
the head, and raw mpi4py ``Allreduce``, in one run.

Run::

    mpiexec -n 4 python bench/bench_allreduce.py            # 2 and 3 members, 64 MiB, 5 reps
    mpiexec -n 4 python bench/bench_allreduce.py --quick    # 3 reps
    mpiexec -n 3 python bench/bench_allreduce.py            # 2 members only

Every rank runs this script. First the *raw* phase: for each member count ``k``, ranks ``1..k``
of ``COMM_WORLD`` make a communicator of their own (``Create_group``, as the runtime does) and
time ``comm.Allreduce(gradient, total)`` into a buffer reused from one repetition to the next,
after a barrier among them; the figure is the slowest member's time. The other ranks wait in a
sleeping barrier.

Then ``mosaic.run(main)`` and the head measures, for each ``k``:

* array Allreduce: a collective array of ``k`` members (``len=k, collective=True``) whose
  gradients were made beforehand; timed ``await arr.reduce()``, whose members run
  ``mosaic.comm().Allreduce(gradient, total)`` (a reused buffer, as in raw) and return only the
  seconds spent inside it (also reported, the slowest member's): the gradients never pass
  through the head, and every member ends up with the sum;
* gather on the head: ``k`` plain tesserae, one per worker, have made a fresh gradient each
  (untimed: the tasks are awaited first); timed: fetching the ``k`` results on the head
  (``mosaic.gather``) and summing them there. This leaves the sum on the head only; sending it
  back to the members would cost a broadcast more.

Figures are medians over ``--reps`` after one warm-up, in ms. Ratio column: mosaic_mpi / raw
mpi4py (times: above 1 is slower). The gather rows compare with the array's Allreduce.
"""

import argparse
import os
import time

import numpy as np
from mpi4py import MPI

import mosaic_mpi as mosaic
from _common import Table, add_experiment_options, idle_barrier, run_benchmark, summary, \
    write_json

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
        The options (``--quick`` applied).
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='3 reps')
    parser.add_argument('--mib', type=int, default=64, help='gradient size in MiB (default 64)')
    parser.add_argument('--reps', type=int, default=None,
                        help='timed repetitions after one warm-up (default 5; --quick 3)')
    parser.add_argument('--json', metavar='PATH', default=None, help='also write results as JSON')
    add_experiment_options(parser)
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 3 if args.quick else 5
    return args


def member_counts(size):
    """Member counts measured with ``size`` ranks: 2 and 3, as far as there are workers."""
    return [k for k in (2, 3) if k <= size - 1]


@mosaic.tessera
class Gradient:
    """A member holding a gradient: summed by Allreduce (collective) or fetched (plain)."""

    def __init__(self, count):
        self.count = count
        self.gradient = np.full(count, 1.0 + (mosaic.runtime().rank % 7))
        self.total = np.zeros(count)

    def reduce(self):
        """Sum the members' gradients into every member's ``total`` (collective arrays only).

        Returns
        -------
        float
            Seconds inside ``Allreduce`` on this member.
        """
        comm = mosaic.comm()
        start = time.perf_counter()
        comm.Allreduce(self.gradient, self.total)
        return time.perf_counter() - start

    def check(self):
        """float: the first element of the sum (the head checks it)."""
        return float(self.total[0])

    def fresh(self):
        """np.ndarray: a new gradient (returned, so stored as the task's result)."""
        return np.full(self.count, 1.0 + (mosaic.runtime().rank % 7))


# -- raw mpi4py phase (every rank) -------------------------------------------------------------------

def raw_phase(args):
    """Raw ``Allreduce`` timings among ranks ``1..k`` for each member count ``k``.

    Returns
    -------
    dict
        On rank 0: ``{k: seconds list}`` (the slowest member's time per repetition).
    """
    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    count = args.mib * MIB // 8
    results = {}
    for k in member_counts(world.Get_size()):
        members = list(range(1, k + 1))
        idle_barrier(world)
        samples = []
        if rank in members:
            group = world.Get_group().Incl(members)
            comm = world.Create_group(group, 7)
            group.Free()
            gradient = np.full(count, 1.0 + rank % 7)
            total = np.zeros(count)
            for _ in range(args.reps + 1):
                comm.Barrier()
                start = time.perf_counter()
                comm.Allreduce(gradient, total)
                samples.append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
            assert total[0] == sum(1.0 + r % 7 for r in members)
            comm.Free()
            del gradient, total
        idle_barrier(world)
        if rank == 1:
            world.send(samples[1:], 0)
        elif rank == 0:
            request = world.irecv(source=1)
            while True:
                done, value = request.test()
                if done:
                    results[k] = value
                    break
                time.sleep(1e-3)
        idle_barrier(world)
    return results


# -- mosaic_mpi phase (head) -------------------------------------------------------------------------

def make_main(args, raw):
    """The ``main`` the head runs under ``mosaic.run``; returns the result table."""
    count = args.mib * MIB // 8

    async def main(runtime):
        table = Table(f'sum of a {args.mib} MiB float64 gradient, median of {args.reps} '
                      f'({runtime.num_workers + 1} ranks)')
        for k in member_counts(runtime.num_workers + 1):
            expected = sum(1.0 + r % 7 for r in range(1, k + 1))
            array = Gradient.remote(count, len=k, collective=True)
            await array
            reduced, inside = [], []
            for _ in range(args.reps + 1):
                start = time.perf_counter()
                call = await array.reduce()
                reduced.append(time.perf_counter() - start)
                inside.append(max(await call.result()))
            assert await array.check().result() == [expected] * k
            del array
            plain = [Gradient.remote(count, runtime=runtime.workers[i]) for i in range(k)]
            await mosaic.gather(plain)
            gathered = []
            for _ in range(args.reps + 1):
                tasks = [p.fresh() for p in plain]
                await mosaic.gather(tasks)                   # made, not yet moved
                start = time.perf_counter()
                values = await mosaic.gather([t.result() for t in tasks])
                total = values[0].copy()
                for value in values[1:]:
                    total += value
                gathered.append(time.perf_counter() - start)
                assert total[0] == expected
                del tasks, values, total
            del plain
            m = summary(reduced[1:])['median']
            r = summary(raw[k])['median']
            g = summary(gathered[1:])['median']
            table.add(f'{k} members: array Allreduce', 'ms', m * 1e3, r * 1e3,
                      note='await arr.reduce(); raw: comm.Allreduce among the same ranks')
            i = summary(inside[1:])['median']
            table.add('  of which inside Allreduce', 'ms', i * 1e3, r * 1e3,
                      note='slowest member\'s own timing, in the method')
            table.add(f'{k} members: gather on the head + sum', 'ms', g * 1e3, r * 1e3,
                      note=f'{g / m:.2f}x the array Allreduce; sum left on the head only')
        return table
    return main


def main_all(argv=None):
    """Entry point on every rank: raw phase, then the runtime."""
    args = parse_args(argv)
    table = run_benchmark(args, lambda comm: raw_phase(args), make_main,
                          'run under mpiexec -n 4 (2 and 3 members) or -n 3 (2 members)',
                          load=os.getloadavg()[0])
    if table is not None:
        table.print()
        write_json(args.json, 'allreduce', [table], vars(args))


if __name__ == '__main__':
    main_all()
