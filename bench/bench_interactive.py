"""Round trips under ``interactive('on')`` on a plain event loop, against ``mosaic.run`` and raw
mpi4py, all with spawned workers, in one run.

Run (a single process, no mpiexec: every phase spawns its workers)::

    python bench/bench_interactive.py            # 2000 timed round trips per phase
    python bench/bench_interactive.py --quick    # 300

Each phase runs in a subprocess of its own (a spawned run needs its own singleton MPI process):

* ``raw``: the process spawns one child with ``MPI.COMM_SELF.Spawn``, merges, and ping-pongs a
  pickled ``None`` (``comm.send`` / ``comm.recv``); the median per-iteration time is the round trip.
* ``interactive``: ``asyncio.run`` (a plain loop, as a Jupyter kernel's is) awaiting
  ``mosaic.interactive('on', num_workers=1)``, then ``await p.noop().result()`` one at a time.
* ``interactive-unassisted``: the same, with the loop's own selector put back right after
  ``'on'`` (what a loop without a selector, such as uvloop, gets: replies through the progress
  thread).
* ``run``: ``mosaic.run(main, num_workers=1)`` (the runtime's own event loop), the same calls.
* ``mpiexec``: ``mpiexec -n 2 python bench_interactive.py --phase mpiexec``: ``mosaic.run(main)``
  with a worker started by the launcher instead of spawned.

Each phase reports the median over ``--calls`` round trips after ``--warmup``. The phases run in
``--rounds`` rounds (default 3), interleaved so that a burst of load elsewhere on the machine
hits them alike; the table gives the median over rounds, with the range, and the ratio of that
median to the raw one.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import mosaic_mpi as mosaic

HERE = os.path.dirname(os.path.abspath(__file__))


@mosaic.tessera
class Echo:
    """The tessera called: a method that does nothing."""

    def noop(self):
        """Do nothing.

        Returns
        -------
        None
        """
        return None


async def round_trips(calls, warmup):
    """Median seconds of ``await p.noop().result()`` on a new tessera.

    Parameters
    ----------
    calls, warmup : int
        Timed and untimed round trips.

    Returns
    -------
    float
        Median round trip, s.
    """
    proxy = Echo.remote()
    await proxy
    for _ in range(warmup):
        await proxy.noop().result()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        await proxy.noop().result()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def phase_raw(calls, warmup):
    """Raw mpi4py ping-pong with a spawned child (see the module docstring)."""
    from mpi4py import MPI
    inter = MPI.COMM_SELF.Spawn(sys.executable, [os.path.abspath(__file__), '--phase',
                                                 'raw-child', '--calls', str(calls + warmup)],
                                maxprocs=1)
    comm = inter.Merge(high=False)
    times = []
    for i in range(calls + warmup):
        start = time.perf_counter()
        comm.send(None, dest=1)
        comm.recv(source=1)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    comm.Barrier()
    comm.Disconnect()
    inter.Disconnect()
    return statistics.median(times)


def phase_raw_child(calls):
    """The spawned side of :func:`phase_raw`."""
    from mpi4py import MPI
    inter = MPI.Comm.Get_parent()
    comm = inter.Merge(high=True)
    for _ in range(calls):
        comm.send(comm.recv(source=0), dest=0)
    comm.Barrier()
    comm.Disconnect()
    inter.Disconnect()


def phase_interactive(calls, warmup):
    """Round trips on a plain asyncio loop under ``interactive('on')``."""
    async def main():
        await mosaic.interactive('on', num_workers=1)
        try:
            return await round_trips(calls, warmup)
        finally:
            await mosaic.interactive('off')
    return asyncio.run(main())


def phase_interactive_unassisted(calls, warmup):
    """As :func:`phase_interactive`, the loop's selector restored (progress thread only)."""
    async def main():
        runtime = await mosaic.interactive('on', num_workers=1)
        if runtime.restore_loop is not None:
            runtime.restore_loop()
        try:
            return await round_trips(calls, warmup)
        finally:
            await mosaic.interactive('off')
    return asyncio.run(main())


def phase_mpiexec(calls, warmup):
    """Round trips in ``mosaic.run(main)`` under ``mpiexec -n 2`` (every rank runs this)."""
    async def main(runtime):
        return await round_trips(calls, warmup)
    return mosaic.run(main)


def phase_run(calls, warmup):
    """Round trips in ``mosaic.run(main, num_workers=1)`` (the spawned children run this too)."""
    async def main(runtime):
        return await round_trips(calls, warmup)
    return mosaic.run(main, num_workers=1)


def run_phase(name, args):
    """Run one phase in a subprocess; its median round trip in seconds."""
    command = [sys.executable, os.path.abspath(__file__), '--phase', name, '--calls',
               str(args.calls), '--warmup', str(args.warmup)]
    if name == 'mpiexec':
        launcher = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
        command = [launcher if os.path.exists(launcher) else 'mpiexec', '-n', '2'] + command
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.split('MEDIAN')[1].split()[0])


def main(argv=None):
    """Run every phase and print the table (or, with ``--phase``, one phase)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='300 timed round trips per phase')
    parser.add_argument('--calls', type=int, default=None, help='timed round trips (2000)')
    parser.add_argument('--warmup', type=int, default=200, help='untimed round trips first')
    parser.add_argument('--rounds', type=int, default=3, help='rounds of every phase (3)')
    parser.add_argument('--phase', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.calls is None:
        args.calls = 300 if args.quick else 2000
    if args.phase == 'raw-child':
        phase_raw_child(args.calls)
        return
    if args.phase is not None:
        value = globals()['phase_' + args.phase.replace('-', '_')](args.calls, args.warmup)
        if value is not None:           # None: a spawned worker of phase_run
            print(f'MEDIAN {value!r}', flush=True)
        return
    names = ('raw', 'mpiexec', 'run', 'interactive', 'interactive-unassisted')
    rounds = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            rounds[name].append(run_phase(name, args))
    figures = {name: statistics.median(values) for name, values in rounds.items()}
    raw = figures['raw']
    print(f'round trip, median of {args.calls} calls, median of {args.rounds} rounds '
          f'({os.cpu_count()} cores), 1 worker')
    print(f'{"":<52}{"us":>10}{"x raw":>10}   range over rounds, us')
    rows = [('raw mpi4py send/recv ping-pong (spawned child)', 'raw'),
            ('mosaic.run(main), mpiexec -n 2', 'mpiexec'),
            ('mosaic.run(main, num_workers=1), spawned', 'run'),
            ("interactive('on') in asyncio.run", 'interactive'),
            ("interactive('on'), loop not assisting", 'interactive-unassisted')]
    for label, key in rows:
        low, high = min(rounds[key]) * 1e6, max(rounds[key]) * 1e6
        print(f'{label:<52}{figures[key] * 1e6:>10.1f}{figures[key] / raw:>10.1f}'
              f'   {low:.1f}-{high:.1f}')


if __name__ == '__main__':
    main()
