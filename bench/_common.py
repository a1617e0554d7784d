"""Shared helpers of the mosaic_mpi benchmarks: the benchmark tessera, statistics, idle waits
that do not busy-poll, machine facts and the result table.

Every script under ``bench/`` is started as ``mpiexec -n N python bench/<script>.py``; Python puts
``bench/`` first on ``sys.path`` on every rank, so workers import this module (and find the
:class:`Bench` tessera in it by reference) exactly as the head does.
"""

import json
import os
import platform
import statistics
import time

import numpy as np

import mosaic_mpi as mosaic

__all__ = ['Bench', 'summary', 'idle_wait', 'idle_barrier', 'machine_info', 'Table',
           'cpu_seconds', 'write_json', 'GcClock', 'add_experiment_options', 'apply_experiments',
           'describe_experiments', 'thread_cpu_seconds']


@mosaic.tessera
class Bench:
    """The tessera every benchmark calls: methods that do (almost) nothing."""

    def noop(self):
        """Do nothing.

        Returns
        -------
        None
        """
        return None

    def consume(self, array):
        """Receive an array and return only its size.

        Parameters
        ----------
        array : numpy.ndarray
            The argument under test.

        Returns
        -------
        int
            ``array.nbytes``.
        """
        return int(array.nbytes)

    def produce(self, count):
        """Make an array on this worker (written, so its pages exist before it is fetched).

        Parameters
        ----------
        count : int
            float64 elements.

        Returns
        -------
        numpy.ndarray
            ``count`` ones.
        """
        return np.ones(count, dtype=np.float64)

    def cpu(self):
        """CPU seconds this worker process has used, and a monotonic wall clock.

        Returns
        -------
        tuple of float
            ``(cpu_seconds, time.monotonic())``.
        """
        return cpu_seconds(), time.monotonic()

    def pid(self):
        """The worker's process id.

        Returns
        -------
        int
        """
        return os.getpid()

    def start_gc_clock(self):
        """Start timing the cyclic collections of this worker process (:class:`GcClock`)."""
        self._gc_clock = GcClock()

    def stop_gc_clock(self):
        """Stop the clock of :meth:`start_gc_clock`.

        Returns
        -------
        tuple
            ``(seconds, full)``: wall seconds spent in collections, and how many were full.
        """
        clock, self._gc_clock = self._gc_clock, None
        return clock.stop()

    def thread_cpu(self):
        """CPU seconds used by each thread of the worker process.

        Returns
        -------
        dict
            See :func:`thread_cpu_seconds`.
        """
        return thread_cpu_seconds()


class GcClock:
    """Wall time this process spends in cyclic collections (``gc.callbacks``), and how many of
    them were full (generation 2) ones, from creation to :meth:`stop`: the collector's share of
    a per-call cost, less sensitive to the machine's load than the totals."""

    def __init__(self):
        import gc
        self._gc = gc
        self.seconds = 0.0
        self.full = 0
        self._start = None
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == 'start':
            self._start = time.perf_counter()
        elif self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self.full += info['generation'] == 2
            self._start = None

    def stop(self):
        """Stop timing.

        Returns
        -------
        tuple
            ``(seconds, full)``.
        """
        self._gc.callbacks.remove(self._callback)
        return self.seconds, self.full


def thread_cpu_seconds():
    """CPU time (user + system) used so far by each thread of this process, by thread name.

    Threads Python does not know (MPI's own, if any) are summed under ``'other'``.

    Returns
    -------
    dict
        ``{thread name: seconds}``.
    """
    import threading
    import psutil
    names = {t.native_id: t.name for t in threading.enumerate()}
    seconds = {}
    for thread in psutil.Process().threads():
        name = names.get(thread.id, 'other')
        seconds[name] = seconds.get(name, 0.0) + thread.user_time + thread.system_time
    return seconds


def cpu_seconds():
    """CPU time (user + system, all threads) this process has used so far.

    Returns
    -------
    float
        Seconds.
    """
    import psutil
    times = psutil.Process().cpu_times()
    return times.user + times.system


def summary(samples):
    """Median, mean, 10th and 90th percentiles of a list of numbers.

    Parameters
    ----------
    samples : sequence of float
        At least one value.

    Returns
    -------
    dict
        Keys ``median``, ``mean``, ``p10``, ``p90``, ``n``.
    """
    values = sorted(samples)
    n = len(values)
    return {'median': statistics.median(values), 'mean': statistics.fmean(values),
            'p10': values[int(0.1 * (n - 1))], 'p90': values[int(0.9 * (n - 1))], 'n': n}


def idle_wait(request, poll=1e-3):
    """Complete an MPI request by testing it every ``poll`` seconds instead of spinning.

    MPICH busy-polls inside blocking calls (``Wait``, ``Barrier``, ``Recv``). On a machine with as
    many cores as ranks, a rank spinning in a barrier steals the core another rank is measuring
    on; this wait leaves it free.

    Parameters
    ----------
    request : mpi4py.MPI.Request
        The request.
    poll : float
        Seconds between tests.
    """
    while not request.Test():
        time.sleep(poll)


def idle_barrier(comm, poll=1e-3):
    """A barrier that sleeps between tests (``Ibarrier`` + :func:`idle_wait`).

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Communicator.
    poll : float
        Seconds between tests.
    """
    idle_wait(comm.Ibarrier(), poll)


def add_experiment_options(parser):
    """Add the options that change the runtime's surroundings (never its code) for experiments.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Gets ``--switch-interval``, ``--timer-slack-ns``, ``--gc-threshold``, ``--spin-time``
        and ``--max-sleep``.
    """
    group = parser.add_argument_group('experiments (defaults leave the runtime as it is)')
    group.add_argument('--switch-interval', type=float, default=None,
                       help='sys.setswitchinterval on every rank (CPython default 0.005 s)')
    group.add_argument('--timer-slack-ns', type=int, default=None,
                       help='prctl(PR_SET_TIMERSLACK) before the runtime starts; its threads '
                            'inherit it (Linux default 50000 ns; the progress thread sets its '
                            'own to 1000 ns whatever this says)')
    group.add_argument('--gc-threshold', type=int, default=None,
                       help='gc.set_threshold(N) on every rank (CPython default 700; 0 turns '
                            'the cyclic garbage collector off)')
    group.add_argument('--spin-time', type=float, default=None,
                       help='runtime spin_time (s): how long the progress thread keeps polling '
                            'after the last activity (default 0.001)')
    group.add_argument('--max-sleep', type=float, default=None,
                       help='runtime max_sleep (s): longest idle sleep once a rank has been '
                            'quiet for 50 ms (default 0.01)')


def apply_experiments(args):
    """Apply the options of :func:`add_experiment_options` on this rank.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options.

    Returns
    -------
    dict
        Runtime configuration keywords for ``mosaic.run`` (``spin_time``, ``max_sleep``).
    """
    import sys
    if getattr(args, 'switch_interval', None) is not None:
        sys.setswitchinterval(args.switch_interval)
    if getattr(args, 'timer_slack_ns', None) is not None:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(29, ctypes.c_ulong(args.timer_slack_ns), 0, 0, 0) != 0:  # PR_SET_TIMERSLACK
            raise OSError(ctypes.get_errno(), 'prctl(PR_SET_TIMERSLACK) failed')
    if getattr(args, 'gc_threshold', None) is not None:
        import gc
        gc.set_threshold(args.gc_threshold)
    return {key: getattr(args, key) for key in ('spin_time', 'max_sleep')
            if getattr(args, key, None) is not None}


def describe_experiments(args):
    """One line naming the experiment options in force (``'none'`` if the runtime is as shipped).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options.

    Returns
    -------
    str
    """
    parts = [f'{key}={getattr(args, key)}' for key in
             ('switch_interval', 'timer_slack_ns', 'gc_threshold', 'spin_time', 'max_sleep')
             if getattr(args, key, None) is not None]
    return ', '.join(parts) or 'none'


def _mpich_version():
    try:
        from mpi4py import MPI
        first = MPI.Get_library_version().splitlines()[0]     # 'MPICH Version:      5.0.2'
        return ' '.join(first.replace('Version:', '').split())
    except Exception:  # MPI not available: the facts are still useful without it
        return 'unknown'


def machine_info():
    """Facts about this machine and software stack, for the report.

    Returns
    -------
    dict
        ``nproc``, ``cpu``, ``python``, ``mpi4py``, ``mpi``, ``numpy``, ``mosaic_mpi``.
    """
    cpu = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    import mpi4py
    return {'nproc': os.cpu_count(), 'cpu': cpu, 'python': platform.python_version(),
            'mpi4py': mpi4py.__version__, 'mpi': _mpich_version(), 'numpy': np.__version__,
            'mosaic_mpi': mosaic.__version__}


def _fmt(value):
    if value is None:
        return '-'
    if isinstance(value, str):
        return value
    magnitude = abs(value)
    if magnitude >= 1000:
        return f'{value:,.0f}'
    if magnitude >= 10:
        return f'{value:.1f}'
    if magnitude >= 0.1:
        return f'{value:.2f}'
    return f'{value:.3g}'


class Table:
    """Rows of ``figure | mosaic_mpi | raw mpi4py | mosaic/raw``, printed as aligned text.

    The ratio is always mosaic_mpi divided by raw mpi4py in the figure's own unit: above 1 is
    worse for times, below 1 is worse for rates and bandwidths.

    Parameters
    ----------
    title : str
        Printed above the table.
    """

    def __init__(self, title):
        self.title = title
        self.rows = []

    def add(self, figure, unit, mosaic_value, raw_value=None, note=''):
        """Add a row.

        Parameters
        ----------
        figure : str
            What is measured.
        unit : str
            Its unit.
        mosaic_value, raw_value : float or None
            The two measurements (``None`` when there is none).
        note : str
            Free text printed after the row.
        """
        ratio = None
        if mosaic_value is not None and raw_value:
            ratio = mosaic_value / raw_value
        self.rows.append({'figure': figure, 'unit': unit, 'mosaic': mosaic_value,
                          'raw': raw_value, 'ratio': ratio, 'note': note})

    def render(self):
        """The table as text.

        Returns
        -------
        str
            Aligned columns, one row per figure.
        """
        head = ('figure', 'unit', 'mosaic_mpi', 'raw mpi4py', 'mosaic/raw', 'note')
        cells = [head] + [(r['figure'], r['unit'], _fmt(r['mosaic']), _fmt(r['raw']),
                           '-' if r['ratio'] is None else f'{r["ratio"]:.3g}', r['note'])
                          for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
        lines = [f'== {self.title} ==']
        for k, row in enumerate(cells):
            lines.append('  '.join(c.ljust(w) if i in (0, 1, 5) else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))).rstrip())
            if k == 0:
                lines.append('  '.join('-' * w for w in widths))
        return '\n'.join(lines)

    def print(self):
        """Print :meth:`render` (flushed)."""
        print(self.render(), flush=True)


def write_json(path, name, tables, extra=None):
    """Write the tables (and the machine facts) as JSON, for keeping or diffing results.

    Parameters
    ----------
    path : str or None
        File to write; nothing is written if ``None``.
    name : str
        Benchmark name.
    tables : list of Table
        Results.
    extra : dict, optional
        Anything else worth keeping (e.g. the options used).
    """
    if not path:
        return
    data = {'benchmark': name, 'time': time.strftime('%Y-%m-%dT%H:%M:%S'),
            'machine': machine_info(), 'tables': {t.title: t.rows for t in tables},
            'extra': extra or {}}
    with open(path, 'w') as f:
        json.dump(data, f, indent=2)


def machine_line(args, ranks, load=None):
    """The one-line description of the machine and run that every script prints first.

    Parameters
    ----------
    args : argparse.Namespace
        The script's options (for the experiments in force).
    ranks : int
        Number of MPI ranks.
    load : float, optional
        1-minute load average when the script started.

    Returns
    -------
    str
    """
    info = machine_info()
    loaded = f'load average at start {load:.2f}; ' if load is not None else ''
    return (f'machine: {info["nproc"]} cores, {info["cpu"]}; python {info["python"]}, '
            f'mpi4py {info["mpi4py"]}, {info["mpi"]}; {ranks} ranks; {loaded}'
            f'experiments: {describe_experiments(args)}')



def run_benchmark(args, raw_phase, make_main, usage, load=None):
    """The shape every script shares: raw mpi4py phase, then the runtime, on every rank.

    Parameters
    ----------
    args : argparse.Namespace
        The script's options.
    raw_phase : callable
        ``raw_phase(comm)`` on every rank, before the runtime starts; returns what ``make_main``
        needs (on rank 0).
    make_main : callable
        ``make_main(args, raw)`` returns the ``async def main(runtime)`` to run on the head.
    usage : str
        Message for a launch on fewer than 2 ranks.
    load : float, optional
        Load average at start, for the machine line.

    Returns
    -------
    object or None
        On rank 0, what ``main`` returned (after the machine line is printed); ``None`` on the
        other ranks (workers end inside ``mosaic.run``).
    """
    import sys

    from mpi4py import MPI

    import mosaic_mpi as mosaic

    comm = MPI.COMM_WORLD
    if comm.Get_size() < 2:
        sys.exit(usage)
    raw = raw_phase(comm)
    result = mosaic.run(make_main(args, raw), **apply_experiments(args))
    if comm.Get_rank() != 0:
        return None
    print(machine_line(args, comm.Get_size(), load))
    return result
