"""``mrun``: start a mosaic_mpi run with Mosaic's options (``mrun -nw 2 python script.py``)."""

import importlib.metadata
import sys

import click

from . import hosts, launch

__all__ = ['mrun']


def _version():
    try:
        return importlib.metadata.version('mosaic_mpi')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


@click.command(context_settings={'allow_interspersed_args': False,
                                 'help_option_names': ['-h', '--help']},
               epilog='Everything from the first word that is not an option on is the command '
                      '(`mrun -nw 2 python script.py --shots 4`); `--` also ends the options.')
@click.option('-n', '--nnodes', type=int, default=1, show_default=True,
              help='Nodes (hosts) that run workers: the first N of the batch allocation.')
@click.option('-nw', '--nworkers', type=int, default=1, show_default=True,
              help='Workers per node. Rank 0, the head, runs on the first node beside its workers.')
@click.option('-nth', '--nthreads', type=int, default=None,
              help='Threads per worker: OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS, '
                   'NUMBA_NUM_THREADS.  [default: CPUs per node // workers per node]')
@click.option('-l/-c', '--local/--cluster', default=False,
              help='--local ignores any SLURM/PBS allocation and runs on this machine; '
                   '--cluster (default) uses the allocation found in the environment, if any.')
@click.option('-fh/-rh', '--free-head/--reuse-head', default=False,
              help='--free-head gives the head a host of its own (needs N + 1 hosts); '
                   '--reuse-head (default) puts it on the first worker host.')
@click.option('--launcher', type=click.Choice(['auto', 'mpiexec', 'srun']), default='auto',
              show_default=True,
              help='auto: srun inside a SLURM allocation, else mpiexec.')
@click.option('--mpi', 'mpi_plugin', default='pmi2', show_default=True,
              help="srun's --mpi plugin (pmi2 for MPICH; Open MPI 5 needs pmix).")
@click.option('--mpiexec', 'mpiexec_path', default=None, metavar='PATH',
              help='The mpiexec to use.  [default: the one beside this Python, else on PATH]')
@click.option('--debug', 'log_level', flag_value='debug',
              help="Print the runtime's log at this level on each rank's stderr "
                   '(sets MOSAIC_MPI_LOG_LEVEL).')
@click.option('--info', 'log_level', flag_value='info', help='Log level info.')
@click.option('--warning', 'log_level', flag_value='warning', help='Log level warning.')
@click.option('--error', 'log_level', flag_value='error', help='Log level error.')
@click.option('--perf', 'log_level', flag_value='', default=True,
              help="Mosaic's default level: the runtime stays silent (mosaic_mpi has no perf "
                   'level).')
@click.option('--dry-run', is_flag=True,
              help='Print the command and the variables it adds, then exit without running it.')
@click.option('-v', '--verbose', is_flag=True,
              help='Print the same on stderr (lines starting "mrun: ") before running it.')
@click.version_option(_version(), '--version', prog_name='mrun (mosaic_mpi)')
@click.argument('command', nargs=-1, type=click.UNPROCESSED, required=True)
def mrun(nnodes, nworkers, nthreads, local, free_head, launcher, mpi_plugin, mpiexec_path,
         log_level, dry_run, verbose, command):
    """Run COMMAND as a mosaic_mpi job: 1 head + NWORKERS workers on each of NNODES nodes.

    Starts `mpiexec` (or `srun --mpi=pmi2` inside a SLURM allocation) with 1 + NNODES * NWORKERS
    ranks; rank 0 is the head. Hosts come from SLURM_JOB_NODELIST or PBS_NODEFILE (each host
    once); outside an allocation the run stays on this machine. mrun exits with the launcher's
    exit code and passes SIGINT and SIGTERM on to it.
    \f

    Parameters
    ----------
    nnodes, nworkers, nthreads : int
        Mosaic's -n, -nw and -nth.
    local, free_head : bool
        Ignore the allocation; give the head its own host.
    launcher : {'auto', 'mpiexec', 'srun'}
    mpi_plugin : str
        srun's --mpi value.
    mpiexec_path : str or None
    log_level : str
        '' (silent) or a level for MOSAIC_MPI_LOG_LEVEL.
    dry_run, verbose : bool
    command : tuple of str

    Raises
    ------
    click.UsageError
        For counts below 1, an allocation too small for -n, srun outside SLURM, no mpiexec.
    SystemExit
        Always, with the launcher's exit code (128 + N if signal N ended it).
    """
    try:
        allocation = hosts.detect(local=local)
        plan = launch.build(
            command, allocation=allocation, nodes=nnodes, workers=nworkers, threads=nthreads,
            launcher=None if launcher == 'auto' else launch.Launcher(launcher),
            mpiexec=mpiexec_path, mpi=mpi_plugin, free_head=free_head,
            cpus_per_task=nthreads,
            extra_env={'MOSAIC_MPI_LOG_LEVEL': log_level} if log_level else None)
    except (ValueError, OSError) as error:
        raise click.UsageError(str(error)) from error
    if dry_run:
        click.echo(launch.describe(plan))
        return
    if verbose:
        for line in launch.describe(plan).splitlines():
            click.echo(f'mrun: {line}', err=True)
    try:
        code = launch.execute(plan)
    except FileNotFoundError as error:
        raise click.UsageError(f'cannot start {plan.argv[0]}: {error}') from error
    sys.exit(code)


def main():
    """Console-script entry point of ``mrun``."""
    mrun(prog_name='mrun')


if __name__ == '__main__':
    main()
