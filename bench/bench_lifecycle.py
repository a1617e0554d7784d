"""Start-up time, shutdown time and idle CPU: mosaic_mpi against raw mpi4py.

Run (wrapper, all figures including shutdown)::

    bench/run_lifecycle.sh              # mpiexec -n 2; `-n 3` first to change; options follow
    bench/run_lifecycle.sh --quick      # 3 s idle windows instead of 10 s

or directly (every figure but the time to process exit)::

    mpiexec -n 2 python bench/bench_lifecycle.py [--t0 $(date +%s.%N)] [--idle 10]

What one run does, in order, on every rank:

1. ``from mpi4py import MPI`` (``MPI_Init``).
2. Raw start-up: the first pickle round trip rank 0 <-> rank 1 on ``COMM_WORLD``; then
   ``import mosaic_mpi``.
3. Raw idle CPU over ``--idle`` seconds, twice: (a) ranks 1.. blocked in ``comm.barrier()`` while
   rank 0 sleeps (MPICH busy-polls in a blocking call, so expect ~100 % of a core: that *is* what an
   idle raw mpi4py rank costs); (b) every rank in ``Ibarrier`` tested every 1 ms with
   ``time.sleep`` in between (the polite raw baseline, same wake-up rate as the runtime's idle
   back-off).
4. ``mosaic.run(main)``; ``main`` makes a tessera and awaits the first call
   (``await p.noop().result()``), then measures idle CPU over ``--idle`` seconds: the head its
   own process, each worker through a tessera method returning its process's CPU time.
5. ``main`` prints its end time and returns; the head prints when ``mosaic.run`` returned.

Start-up is measured from the head process's creation (from ``/proc``, 10 ms resolution) and, when ``--t0`` is given (launch time from ``date +%s.%N``, as the
wrapper does), from the launch of ``mpiexec``. Raw: start -> first raw round trip done. mosaic_mpi:
(start -> ``MPI_Init`` done) + (``import mosaic_mpi``) + (``mosaic.run`` entered -> first call
done), i.e. the same clock with the raw steps 2-3 taken out.

Shutdown: mosaic_mpi's own part is ``main`` returned -> ``mosaic.run`` returned on the head
(drain, stop workers, close transport). The wrapper adds the time to process exit: it notes when
``mpiexec`` returns, and runs a second, raw-only launch (``--raw-only``: steps 1-2 and exit) whose
last-line -> exit time is the raw counterpart (``MPI_Finalize``, interpreter exit, mpiexec
teardown). ``--summarize RAW_LOG FULL_LOG`` prints the combined table from the two logs.

Every measurement is printed as a line ``@ KEY VALUE`` (wall-clock seconds since the epoch, or a
per-rank CPU percentage), followed by a table. The ratio column is mosaic_mpi / raw mpi4py.
"""

import time

_T_SCRIPT = time.time()

import argparse  # noqa: E402  (the first line notes when the script started running)
import asyncio  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def parse_args(argv=None):
    """Command-line options.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
        The options, with ``--quick`` applied.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--t0', type=float, default=None,
                        help='launch time (seconds since the epoch, e.g. from `date +%%s.%%N`)')
    parser.add_argument('--idle', type=float, default=None,
                        help='length of each idle-CPU window in seconds (default 10; --quick 3)')
    parser.add_argument('--quick', action='store_true', help='3 s idle windows')
    parser.add_argument('--raw-only', action='store_true',
                        help='only MPI start-up and the first raw round trip, then exit')
    parser.add_argument('--spin-time', type=float, default=None,
                        help='experiment: runtime spin_time (s)')
    parser.add_argument('--max-sleep', type=float, default=None,
                        help='experiment: runtime max_sleep (s), the idle wake-up period')
    parser.add_argument('--summarize', nargs=2, metavar=('RAW_LOG', 'FULL_LOG'),
                        help='print the combined table from the logs of a raw-only and a full run')
    args = parser.parse_args(argv)
    if args.idle is None:
        args.idle = 3.0 if args.quick else 10.0
    return args


def mark(key, value):
    """Print a machine-readable measurement line ``@ KEY VALUE`` (flushed).

    Parameters
    ----------
    key : str
        Name.
    value : float
        Value.
    """
    print(f'@ {key} {value:.6f}', flush=True)


def process_created():
    """Creation time of this process (seconds since the epoch, 10 ms resolution).

    Computed as now minus the process's age, both read from ``/proc`` (``psutil``'s
    ``create_time()`` adds the boot time, which the kernel reports in whole seconds, so it can be
    off by up to a second).

    Returns
    -------
    float
    """
    now = time.time()
    with open('/proc/uptime') as f:
        uptime = float(f.read().split()[0])
    with open('/proc/self/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    started = int(fields[19]) / os.sysconf('SC_CLK_TCK')      # field 22 of stat(5)
    return now - (uptime - started)


def cpu_seconds():
    """User + system CPU seconds used by this process (all threads) so far.

    Returns
    -------
    float
    """
    import psutil
    times = psutil.Process().cpu_times()
    return times.user + times.system


# -- raw mpi4py --------------------------------------------------------------------------------------

def raw_first_round_trip(comm):
    """The first pickle round trip between ranks 0 and 1 (other ranks do nothing).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        ``COMM_WORLD``.
    """
    if comm.Get_rank() == 0:
        comm.send(None, 1)
        comm.recv(source=1)
    elif comm.Get_rank() == 1:
        comm.recv(source=0)
        comm.send(None, 0)


def raw_idle(comm, seconds, polite):
    """Idle CPU of every rank waiting ``seconds`` for rank 0 in a barrier.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        ``COMM_WORLD``.
    seconds : float
        Rank 0 sleeps this long before joining.
    polite : bool
        Wait in ``Ibarrier`` + ``Test`` every 1 ms with sleeps in between, instead of the blocking
        ``comm.barrier()`` (which MPICH busy-polls).

    Returns
    -------
    list of float or None
        On rank 0: per rank, CPU time over wall time in percent of one core; ``None`` elsewhere.
    """
    comm.barrier()
    wall, cpu = time.monotonic(), cpu_seconds()
    if comm.Get_rank() == 0:
        time.sleep(seconds)
    if polite:
        request = comm.Ibarrier()
        while not request.Test():
            time.sleep(1e-3)
    else:
        comm.barrier()
    share = 100.0 * (cpu_seconds() - cpu) / (time.monotonic() - wall)
    return comm.gather(share, root=0)


# -- mosaic_mpi ----------------------------------------------------------------------------------------

def make_main(args):
    """The ``main`` the head runs under ``mosaic.run``.

    Parameters
    ----------
    args : argparse.Namespace
        Options.

    Returns
    -------
    coroutine function
        ``main(runtime)``, returning ``{'first_call': t, 'created': t, 'idle': [percent per rank]}``.
    """
    from _common import Bench

    async def main(runtime):
        probes = Bench.remote(len=runtime.num_workers)
        await probes[0].noop().result()
        first_call = time.time()
        await probes
        before_head = (cpu_seconds(), time.monotonic())
        before = await probes.cpu().result()
        await asyncio.sleep(args.idle)
        after = await probes.cpu().result()
        after_head = (cpu_seconds(), time.monotonic())
        shares = [100.0 * (after_head[0] - before_head[0]) / (after_head[1] - before_head[1])]
        shares += [100.0 * (a[0] - b[0]) / (a[1] - b[1]) for a, b in zip(after, before)]
        return {'first_call': first_call, 'idle': shares}
    return main


# -- reporting -------------------------------------------------------------------------------------------

def read_marks(path):
    """The ``@ KEY VALUE`` lines of a log (and the wrapper's ``EXITED`` line).

    Parameters
    ----------
    path : str
        Log file.

    Returns
    -------
    dict
        ``KEY -> float``.
    """
    marks = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == '@':
                marks[parts[1]] = float(parts[2])
            elif len(parts) == 2 and parts[0] == 'EXITED':
                marks['EXITED'] = float(parts[1])
    return marks


def lifecycle_table(full, raw=None):
    """Build the result table from the marks of a full run (and of a raw-only run).

    Parameters
    ----------
    full : dict
        Marks of the full run.
    raw : dict, optional
        Marks of the raw-only run (gives the raw shutdown, and a raw start-up not shared with
        a mosaic import).

    Returns
    -------
    Table
    """
    from _common import Table
    table = Table('start-up, shutdown and idle CPU')
    importing = full['T_IMPORTED'] - full['T_RAW_FIRST']
    mosaic_part = importing + full['T_FIRST_CALL'] - full['T_RUN']
    for origin, label in (('T0', 'mpiexec launch'), ('CREATED', 'head process creation')):
        if origin not in full:
            continue
        table.add(f'start-up: {label} -> first call done', 's',
                  full['T_MPI'] - full[origin] + mosaic_part,
                  full['T_RAW_FIRST'] - full[origin],
                  note=f'mosaic: import {importing * 1e3:.0f} ms + run() -> first call '
                       f'{(full["T_FIRST_CALL"] - full["T_RUN"]) * 1e3:.0f} ms')
    table.add('start-up: script start -> MPI_Init done (shared)', 's', None,
              full['T_MPI'] - full['T_SCRIPT'], note='python startup + mpi4py import + MPI_Init')
    if raw is not None and 'T0' in raw:
        table.add('start-up, raw-only launch: launch -> first round trip', 's',
                  None, raw['T_RAW_FIRST'] - raw['T0'], note='no mosaic_mpi import')
    stop = full['T_RUN_RETURNED'] - full['T_MAIN_END']
    raw_exit = raw['EXITED'] - raw['T_LAST'] if raw is not None and 'EXITED' in raw else None
    table.add('shutdown: main returned -> mosaic.run returned', 's', stop, None,
              note='drain, Stop to workers, their acks, transport closed')
    if 'EXITED' in full:
        table.add('shutdown: main returned -> mpiexec returned', 's',
                  full['EXITED'] - full['T_MAIN_END'], raw_exit,
                  note='raw: last line of a raw-only run -> mpiexec returned')
    ranks = sorted(int(k.rsplit('_r', 1)[1]) for k in full if k.startswith('IDLE_MOSAIC_r'))
    for rank in ranks:
        who = 'head' if rank == 0 else f'worker {rank}'
        table.add(f'idle CPU, rank {rank} ({who}) vs blocking barrier', '% core',
                  full[f'IDLE_MOSAIC_r{rank}'], full.get(f'IDLE_RAW_BARRIER_r{rank}'),
                  note='raw rank 0 sleeps; others spin in MPI_Barrier' if rank == 0 else '')
        table.add(f'idle CPU, rank {rank} ({who}) vs 1 ms Ibarrier poll', '% core',
                  full[f'IDLE_MOSAIC_r{rank}'], full.get(f'IDLE_RAW_POLL_r{rank}'))
    return table


def run(args):
    """One launch (full or raw-only), on every rank.

    Parameters
    ----------
    args : argparse.Namespace
        Options.
    """
    created = process_created()
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if comm.Get_size() < 2:
        sys.exit('run under mpiexec -n 2 (or through bench/run_lifecycle.sh)')
    mpi_ready = time.time()
    head = comm.Get_rank() == 0
    raw_first_round_trip(comm)
    raw_first = time.time()
    if not args.raw_only:
        import mosaic_mpi as mosaic
    imported = time.time()
    if head:
        if args.t0 is not None:
            mark('T0', args.t0)
        mark('CREATED', created)
        mark('T_SCRIPT', _T_SCRIPT)
        mark('T_MPI', mpi_ready)
        mark('T_RAW_FIRST', raw_first)
        mark('T_IMPORTED', imported)
    if args.raw_only:
        if head:
            mark('T_LAST', time.time())
        return
    busy = raw_idle(comm, args.idle, polite=False)
    poll = raw_idle(comm, args.idle, polite=True)
    if head:
        for rank, (b, p) in enumerate(zip(busy, poll)):
            mark(f'IDLE_RAW_BARRIER_r{rank}', b)
            mark(f'IDLE_RAW_POLL_r{rank}', p)
    run_start = time.time()
    main = make_main(args)

    async def timed_main(runtime):
        result = await main(runtime)
        result['main_end'] = time.time()
        print(f'@ T_MAIN_END {result["main_end"]:.6f}', flush=True)
        return result

    config = {key: getattr(args, key) for key in ('spin_time', 'max_sleep')
              if getattr(args, key) is not None}
    result = mosaic.run(timed_main, **config)
    returned = time.time()
    # Only the head gets here (workers end their process inside mosaic.run).
    mark('T_RUN', run_start)
    mark('T_FIRST_CALL', result['first_call'])
    for rank, share in enumerate(result['idle']):
        mark(f'IDLE_MOSAIC_r{rank}', share)
    mark('T_RUN_RETURNED', returned)
    from _common import machine_info
    info = machine_info()
    print(f'machine: {info["nproc"]} cores, {info["cpu"]}; python {info["python"]}, '
          f'mpi4py {info["mpi4py"]}, {info["mpi"]}; {comm.Get_size()} ranks; '
          f'idle windows {args.idle:g} s; load average now {os.getloadavg()[0]:.2f}; '
          f'runtime config {config or "default"}')
    marks = {'T_SCRIPT': _T_SCRIPT, 'T_MPI': mpi_ready, 'T_IMPORTED': imported,
             'T_RAW_FIRST': raw_first, 'CREATED': created,
             'T_RUN': run_start, 'T_FIRST_CALL': result['first_call'],
             'T_MAIN_END': result['main_end'], 'T_RUN_RETURNED': returned}
    if args.t0 is not None:
        marks['T0'] = args.t0
    for rank, (b, p, m) in enumerate(zip(busy, poll, result['idle'])):
        marks[f'IDLE_RAW_BARRIER_r{rank}'] = b
        marks[f'IDLE_RAW_POLL_r{rank}'] = p
        marks[f'IDLE_MOSAIC_r{rank}'] = m
    lifecycle_table(marks).print()


def main_all(argv=None):
    """Entry point: a launch on every rank, or ``--summarize`` of two logs.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    args = parse_args(argv)
    if args.summarize:
        raw_log, full_log = args.summarize
        print()
        lifecycle_table(read_marks(full_log), read_marks(raw_log)).print()
        return
    run(args)


if __name__ == '__main__':
    main_all()
