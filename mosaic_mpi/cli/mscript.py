"""``mscript``: write a SLURM or PBS jobscript that runs ``mrun`` (``mscript slurm NAME -nw 2``).

The templates are ``templates/<scheduler>_<cpu|gpu>.sh`` beside this module; their ``{{KEY}}``
fields are filled by ``render``. Unlike Mosaic's mscript, the head shares the first node with its
workers, so the script asks for N nodes, not N + 1.
"""

import importlib.resources
import os
import re
import shlex
import sys

import click

__all__ = ['SCHEDULERS', 'template_path', 'shell_word', 'render', 'mscript']

SCHEDULERS = ('slurm', 'pbs')
_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9._-]{0,62}$')
_TIME = re.compile(r'^\d+:[0-5]\d:[0-5]\d$')
_FIELD = re.compile(r'\{\{([A-Z_]+)\}\}')
DEFAULT_COMMAND = ('python', 'forward.py')
"""Mosaic's mscript runs ``python forward.py``; so do we when no command is given."""


def template_path(scheduler, gpu=False):
    """The template file for a scheduler and flavour.

    Parameters
    ----------
    scheduler : {'slurm', 'pbs'}
    gpu : bool
        The GPU flavour (requests GPUs, lists them in the output).

    Returns
    -------
    importlib.resources.abc.Traversable
        A readable file (``.read_text()``).

    Raises
    ------
    ValueError
        If the scheduler is not one of ``SCHEDULERS``.
    """
    if scheduler not in SCHEDULERS:
        raise ValueError(f'scheduler must be one of {", ".join(SCHEDULERS)}, got {scheduler!r}')
    flavour = 'gpu' if gpu else 'cpu'
    return importlib.resources.files(__package__).joinpath('templates', f'{scheduler}_{flavour}.sh')


def shell_word(word):
    """Quote one argument of the user's command for the jobscript.

    Parameters
    ----------
    word : str

    Returns
    -------
    str
        ``shlex.quote(word)``, except that a word containing ``$`` goes in double quotes (with
        ``"``, ``\\`` and backquotes escaped), so ``output-$SLURM_JOB_ID`` is expanded when the
        job runs.
    """
    if '$' not in word:
        return shlex.quote(word)
    escaped = word.replace('\\', '\\\\').replace('"', '\\"').replace('`', '\\`')
    return f'"{escaped}"'


def _activate_line(venv):
    if not venv:
        return ('# (no virtual environment: mrun and python are those on PATH; '
                'mscript --venv PATH adds one)')
    activate = shlex.quote(os.path.join(venv, 'bin', 'activate'))
    return f'. {activate}   # the Python environment with mosaic_mpi'


def render(scheduler, name, *, nodes=1, workers=1, threads=1, memory=None, time='01:00:00',
           gpus=0, command=DEFAULT_COMMAND, launcher=None, venv=None, script='job.sh'):
    """Fill a jobscript template.

    Parameters
    ----------
    scheduler : {'slurm', 'pbs'}
    name : str
        Job name: a letter, then letters, digits, ``.``, ``_`` or ``-`` (at most 63 characters;
        PBS's limit on some versions is 15).
    nodes, workers, threads : int
        Nodes (``-n``), workers per node (``-nw``), threads per worker (``-nth``); each at least 1.
    memory : float, optional
        Memory per node in GB (SLURM ``--mem``, PBS ``mem`` per chunk); ``None``: the site's
        default.
    time : str
        Wall-clock limit, ``HH:MM:SS`` (hours may exceed 23).
    gpus : int
        GPUs per node; above 0 selects the GPU template.
    command : sequence of str
        What every rank runs, e.g. ``('python', 'examples/tutorial.py')``. Each word is quoted for
        the shell (see ``shell_word``).
    launcher : {None, 'mpiexec', 'srun'}
        Passed to ``mrun --launcher``; ``None`` lets mrun choose (srun under SLURM).
    venv : str, optional
        A virtual environment the job activates first; ``None`` or ``''``: none.
    script : str
        The file name the script will be written to (shown in its "submit with" line).

    Returns
    -------
    str
        The jobscript.

    Raises
    ------
    ValueError
        If a value is out of range, the name or time is malformed, the command is empty, or
        ``launcher='srun'`` is asked of a PBS script.
    """
    if not _NAME.match(name):
        raise ValueError(f'job name must be a letter, then letters, digits, ".", "_" or "-" '
                         f'(at most 63), got {name!r}')
    for label, value in (('-n', nodes), ('-nw', workers), ('-nth', threads)):
        if value < 1:
            raise ValueError(f'{label} must be at least 1, got {value}')
    if gpus < 0:
        raise ValueError(f'--gpus must be >= 0, got {gpus}')
    if memory is not None and not memory > 0:
        raise ValueError(f'-m (memory per node, GB) must be > 0, got {memory}')
    if not _TIME.match(time):
        raise ValueError(f'--time must be HH:MM:SS, got {time!r}')
    if not command:
        raise ValueError('the command to run is empty')
    if launcher == 'srun' and scheduler == 'pbs':
        raise ValueError('--launcher srun is for SLURM; PBS jobs start ranks with mpiexec')
    if launcher not in (None, 'mpiexec', 'srun'):
        raise ValueError(f'launcher must be mpiexec or srun, got {launcher!r}')
    text = template_path(scheduler, gpu=gpus > 0).read_text(encoding='utf-8')
    mem = None if memory is None else f'{memory:g}'
    if scheduler == 'slurm':
        mem_directive = (f'#SBATCH --mem={mem}G' if mem else
                         "# (none asked: the partition's default; mscript -m GB asks for one)")
    else:
        mem_directive = ''
    fields = {
        'NAME': name,
        'NODES': str(nodes),
        'WORKERS': str(workers),
        'THREADS': str(threads),
        'TASKS_PER_NODE': str(workers + 1),
        'NODE_CPUS': str((workers + 1) * threads),
        'GPUS': str(gpus),
        'TIME': time,
        'MEM_DIRECTIVE': mem_directive,
        'MEM_SELECT': f':mem={mem}gb' if mem else '',
        'MEM_NOTE': ', mem = memory' if mem else " (no mem: the queue's default memory)",
        'ACTIVATE': _activate_line(venv),
        'MRUN_OPTIONS': '--verbose ' + (f'--launcher {launcher} ' if launcher else ''),
        'COMMAND': ' '.join(shell_word(str(word)) for word in command),
        'SCRIPT': script,
    }
    return _FIELD.sub(lambda match: fields[match.group(1)], text)


def _current_venv():
    return sys.prefix if sys.prefix != sys.base_prefix else None


@click.command(context_settings={'help_option_names': ['-h', '--help']},
               epilog='Give the command after `--`: `mscript slurm fwd -n 2 -nw 4 -nth 8 -- python '
                      "forward.py --shots 64`. A `$VAR` in it (quote it in your shell: "
                      "'out-$SLURM_JOB_ID') is expanded when the job runs.")
@click.argument('scheduler', type=click.Choice(SCHEDULERS))
@click.argument('name')
@click.option('-n', '--nnodes', type=int, default=1, show_default=True, help='Nodes.')
@click.option('-nw', '--nworkers', type=int, default=1, show_default=True,
              help='Workers per node (the head shares the first node).')
@click.option('-nth', '--nthreads', type=int, default=1, show_default=True,
              help='Threads (CPUs) per worker.')
@click.option('-m', '--memory', type=float, default=None, metavar='GB',
              help="Memory per node in GB.  [default: the site's]")
@click.option('--time', 'walltime', default='01:00:00', show_default=True, metavar='HH:MM:SS',
              help='Wall-clock limit.')
@click.option('--gpus', type=int, default=0, show_default=True,
              help='GPUs per node; > 0 writes the GPU flavour.')
@click.option('--launcher', type=click.Choice(['mpiexec', 'srun']), default=None,
              help="The job's `mrun --launcher`.  [default: mrun's choice, srun under SLURM]")
@click.option('--venv', default=None, metavar='PATH',
              help="Virtual environment the job activates ('' for none).  "
                   '[default: the one mscript runs in, if any]')
@click.option('-o', '--output', default=None, metavar='PATH',
              help="Where to write it ('-': standard output).  [default: <scheduler>_run.sh]")
@click.argument('command', nargs=-1, type=click.UNPROCESSED)
def mscript(scheduler, name, nnodes, nworkers, nthreads, memory, walltime, gpus, launcher, venv,
            output, command):
    """Write a SCHEDULER (slurm or pbs) jobscript named NAME that runs COMMAND with mrun.

    The job asks for NNODES nodes with NWORKERS + 1 ranks each (the head runs on the first) and
    NTHREADS CPUs per rank, and runs `mrun -n NNODES -nw NWORKERS -nth NTHREADS COMMAND`
    (default COMMAND: `python forward.py`, as Mosaic's).
    \f

    Parameters
    ----------
    scheduler : {'slurm', 'pbs'}
    name : str
    nnodes, nworkers, nthreads : int
    memory : float or None
        GB per node.
    walltime : str
        HH:MM:SS.
    gpus : int
    launcher : {None, 'mpiexec', 'srun'}
    venv : str or None
    output : str or None
    command : tuple of str

    Raises
    ------
    click.UsageError
        For the errors ``render`` raises ``ValueError`` for.
    """
    output = output or f'{scheduler}_run.sh'
    try:
        text = render(scheduler, name, nodes=nnodes, workers=nworkers, threads=nthreads,
                      memory=memory, time=walltime, gpus=gpus,
                      command=command or DEFAULT_COMMAND, launcher=launcher,
                      venv=_current_venv() if venv is None else venv,
                      script=output if output != '-' else 'job.sh')
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    if output == '-':
        click.echo(text, nl=False)
        return
    with open(output, 'w', encoding='utf-8') as file:
        file.write(text)
    os.chmod(output, 0o755)
    submit = 'sbatch' if scheduler == 'slurm' else 'qsub'
    click.echo(f'wrote {output}; submit it with: {submit} {output}', err=True)


def main():
    """Console-script entry point of ``mscript``."""
    mscript(prog_name='mscript')


if __name__ == '__main__':
    main()
