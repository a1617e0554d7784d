#!/usr/bin/env python
"""Forward-model 2D ultrasound shots through a sound-speed model, one shot per task.

Run on the runtime (rank 0 is the head, the other ranks are workers)::

    mpiexec -n 3 python examples/ultrasound_forward_2d.py [options]

or in this process only, without the runtime::

    python examples/ultrasound_forward_2d.py --serial [options]

Every rank parses the options, loads the model and checks the output directory before the
runtime starts, so bad input makes every rank exit with code 2 and a one-line message (printed
by rank 0 only, as are ``--help`` and argparse's messages). Started as a single process
without ``--serial``, the script exits with code 2 and says how to launch it.
See docs/ultrasound.md for the physics, options and outputs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

START = time.perf_counter()
# The physics package sits next to this script; workers import it by the same name.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ultrasound.discretisation import SPACE_ORDERS, STENCILS  # noqa: E402
from ultrasound.job import (DEFAULTS, DispersionWarning, ShotConfig, build_config,  # noqa: E402
                            forward_model_serial)
from ultrasound.output import plot_shots, provenance, write_traces  # noqa: E402
from ultrasound.wavelets import WAVELETS  # noqa: E402


#: ``--progress`` choice -> the runtime's ``progress`` setting (``True``: only on a terminal).
PROGRESS = {'auto': True, 'always': 'always', 'never': False}


class RankZeroArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that prints only on the launcher's rank 0.

    Every rank of an ``mpiexec`` job parses the same command line, so without this each
    usage error or ``--help`` text would appear once per rank. Every message argparse prints
    (usage, help, errors, version) goes through ``_print_message``; on the other ranks it
    prints nothing. Exit codes are unchanged: 2 for a usage error, 0 after ``--help``.
    """

    def _print_message(self, message, file=None):
        """Print ``message`` on rank 0 only.

        Parameters
        ----------
        message : str or None
            Text to print.
        file : file-like, optional
            Destination (argparse's default is standard error).
        """
        if launcher_rank() == 0:
            super()._print_message(message, file)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
        ``model, shots, steps, transducers, frequency, wavelet, absorbing, space_order,
        stencil, output, serial, trace, progress``.
    """
    parser = RankZeroArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', metavar='PATH',
                        help="Stride-layout HDF5 sound-speed model (default: built-in phantom)")
    parser.add_argument('--shots', type=int, default=None, metavar='N',
                        help='number of shots, spread evenly around the ring; default: one per '
                             'transducer, at most ' + str(DEFAULTS['shots']))
    parser.add_argument('--steps', type=int, metavar='N',
                        help="time steps (default: the file's time/num, else one crossing "
                             "of the model at its slowest speed)")
    parser.add_argument('--transducers', type=int, default=DEFAULTS['transducers'], metavar='N',
                        help='transducers on the ring (default %(default)s)')
    parser.add_argument('--frequency', type=float, default=DEFAULTS['frequency'], metavar='HZ',
                        help='centre frequency in Hz (default %(default)g)')
    parser.add_argument('--wavelet', choices=sorted(WAVELETS), default=DEFAULTS['wavelet'],
                        help='source wavelet (default %(default)s)')
    parser.add_argument('--absorbing', type=int, default=DEFAULTS['absorbing'], metavar='CELLS',
                        help='absorbing layer width in cells (default %(default)s)')
    parser.add_argument('--space-order', type=int, choices=SPACE_ORDERS,
                        default=DEFAULTS['space_order'],
                        help='order of the Laplacian (default %(default)s)')
    parser.add_argument('--stencil', choices=STENCILS, default=DEFAULTS['stencil'],
                        help='weights of the Laplacian (default: optimised for orders 8-12, '
                             'else taylor)')
    parser.add_argument('--output', default='output', metavar='DIR',
                        help='output directory (default ./%(default)s)')
    parser.add_argument('--serial', action='store_true',
                        help='compute every shot in this process, without the runtime')
    parser.add_argument('--trace', metavar='FILE',
                        help="write the runtime's task timeline to FILE (Chrome Trace Event "
                             "JSON; open it in https://ui.perfetto.dev or draw it with "
                             "python -m mosaic_mpi.trace FILE -o timeline.png)")
    parser.add_argument('--progress', choices=('auto', 'always', 'never'), default='auto',
                        help="progress bar of the shots on standard error: auto (default) "
                             "when it is a terminal, always, or never")
    return parser.parse_args(argv)


def launcher_rank() -> int:
    """Rank given by the MPI launcher's environment, read without initialising MPI.

    Returns
    -------
    int
        ``PMI_RANK`` (MPICH), ``OMPI_COMM_WORLD_RANK`` (Open MPI) or ``SLURM_PROCID``;
        0 when none is set.
    """
    for name in ('PMI_RANK', 'OMPI_COMM_WORLD_RANK', 'SLURM_PROCID'):
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0


def fail(message: str) -> None:
    """Print ``error: <message>`` on rank 0 and exit with code 2 on every rank.

    Parameters
    ----------
    message : str
        One line saying what is wrong.

    Raises
    ------
    SystemExit
        Always, with code 2 (argparse's code for bad input).
    """
    if launcher_rank() == 0:
        print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def check_output_directory(path: str) -> str:
    """Create the output directory if missing and check that files can be written in it.

    Every rank may call this at the same time: creation tolerates a directory made by
    another rank, and the write test uses a uniquely named temporary file.

    Parameters
    ----------
    path : str
        The ``--output`` directory.

    Returns
    -------
    str
        ``path``, unchanged.

    Raises
    ------
    ValueError
        If ``path`` exists and is not a directory, cannot be created, or is a directory in
        which this process cannot create a file; the message names ``path``.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f'output directory {path!r} exists and is not a directory')
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f'output directory {path!r} cannot be created: '
                         f'{exc.strerror or exc}') from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f'output directory {path!r} is not writable')
    # os.access says yes to root everywhere, and to any user on pseudo-filesystems such as
    # /proc: creating a file is the test that counts.
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix='.write-test-'):
            pass
    except OSError as exc:
        raise ValueError(f'output directory {path!r} is not writable: cannot create a file '
                         f'in it ({exc.strerror or exc})') from None
    return path


def check_trace_path(path: str, serial: bool) -> str:
    """Check that the ``--trace`` file can be written (its directory is created if missing).

    Parameters
    ----------
    path : str
        The ``--trace`` file.
    serial : bool
        Whether ``--serial`` was given (then there is no runtime, so no timeline).

    Returns
    -------
    str
        ``path``, unchanged.

    Raises
    ------
    ValueError
        With ``--serial``, if ``path`` is a directory, or if its directory cannot be
        created or written in; the message names ``path``.
    """
    if serial:
        raise ValueError('--trace records the runtime\'s tasks; --serial runs none '
                         '(drop one of them)')
    if os.path.isdir(path):
        raise ValueError(f'trace file {path!r} is a directory')
    try:
        check_output_directory(os.path.dirname(os.path.abspath(path)))
    except ValueError as exc:
        raise ValueError(f'trace file {path!r}: {exc}') from None
    return path


def prepare(argv=None):
    """Parse the options, build the job and check the output directory, or exit with code 2.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    tuple of (argparse.Namespace, ShotConfig)
        The options and the validated job.

    Raises
    ------
    SystemExit
        Code 2 for bad options, an unusable model or an unusable output directory
        (argparse's convention), after rank 0 printed ``error: <message naming the file and
        the problem>``. The output directory (and the ``--trace`` file's) is checked only
        once the model is valid, so bad input creates no directory.
    """
    args = parse_args(argv)
    try:
        shots = args.shots if args.shots is not None else min(DEFAULTS['shots'],
                                                                args.transducers)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always', DispersionWarning)
            config = build_config(model=args.model, shots=shots, steps=args.steps,
                                  transducers=args.transducers, frequency=args.frequency,
                                  wavelet=args.wavelet, absorbing=args.absorbing,
                                  space_order=args.space_order, stencil=args.stencil)
        check_output_directory(args.output)
        if args.trace is not None:
            check_trace_path(args.trace, args.serial)
    except ValueError as exc:            # ModelError is a ValueError
        fail(str(exc))
    if launcher_rank() == 0:
        for warning in caught:
            if issubclass(warning.category, DispersionWarning):
                print(f'warning: {warning.message}', file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename,
                                     warning.lineno)
    return args, config


def world_size() -> int:
    """Number of processes in this MPI job (the runtime's communicator is ``COMM_WORLD``).

    Initialises MPI; ``mosaic.run`` later uses the same, already initialised, MPI.

    Returns
    -------
    int
        ``MPI.COMM_WORLD.Get_size()``: 1 for ``mpiexec -n 1`` or a plain ``python`` launch.
    """
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_size()


def require_ranks(minimum: int = 2) -> None:
    """Exit with code 2 and a hint if the job has too few ranks for the runtime.

    Parameters
    ----------
    minimum : int
        Ranks the runtime needs (1 head and at least 1 worker).

    Raises
    ------
    SystemExit
        Code 2 when ``world_size() < minimum``, after rank 0 printed one ``error:`` line
        naming ``mpiexec`` and ``--serial``.
    """
    if world_size() < minimum:
        fail(f'the distributed job needs at least {minimum} ranks '
             f'(mpiexec -n 3 python {sys.argv[0]} ...); '
             f'use --serial to run in this process')


def finish(args, config: ShotConfig, traces, workers: int, solve_time: float) -> None:
    """Write the outputs and print the summary.

    Parameters
    ----------
    args : argparse.Namespace
        The options (``output`` is used).
    config : ShotConfig
        The job.
    traces : np.ndarray
        float32, shape ``(shots, transducers, steps)``.
    workers : int
        Number of processes that computed shots.
    solve_time : float
        Wall time of the shots, s.
    """
    h5_path = write_traces(os.path.join(args.output, 'traces.h5'), config, traces,
                           provenance=provenance(config, workers=workers))
    png_path = plot_shots(os.path.join(args.output, 'shots.png'), config, traces)
    model = config.model
    print(f'model       {model.source}: {model.shape[0]} x {model.shape[1]} cells, spacing '
          f'{model.spacing[0] * 1e3:g} x {model.spacing[1] * 1e3:g} mm, '
          f'{model.data.min():.0f}-{model.data.max():.0f} m/s')
    print(f'time        dt = {config.dt * 1e9:.2f} ns, {config.num_steps} steps '
          f'({config.num_steps * config.dt * 1e6:.1f} us), {config.wavelet_kind} '
          f'{config.frequency / 1e3:g} kHz')
    print(f'scheme      {config.stencil} order-{config.space_order} Laplacian, time dispersion '
          f'removed, ' + (f'PML of {config.absorbing} cells' if config.absorbing
                          else 'no absorbing layer'))
    print(f'shots       {config.num_shots} of {config.geometry.num_transducers} transducers, '
          f'{"1 process (--serial)" if args.serial else f"{workers} worker(s)"}, '
          f'{solve_time:.2f} s computing shots')
    print(f'elapsed     {time.perf_counter() - START:.2f} s since start-up')
    print(f'outputs     {h5_path}\n            {png_path}')


def run_serial(args, config: ShotConfig) -> None:
    """Compute the job in this process (no runtime) and write the outputs.

    Parameters
    ----------
    args : argparse.Namespace
        The options.
    config : ShotConfig
        The validated job.
    """
    tic = time.perf_counter()
    traces = forward_model_serial(config)
    finish(args, config, traces, 1, time.perf_counter() - tic)


def run_distributed(args, config: ShotConfig) -> None:
    """Compute the job on the runtime and write the outputs (on the head).

    One ``ShotSolver`` tessera per worker is built with the job's model, geometry and
    wavelet; shot ``k`` runs on member ``k mod W``. The shots are gathered as one batch,
    with a progress bar (``--progress``). Every rank calls this; workers serve inside
    ``mosaic.run`` and do not return from it. With ``--trace FILE`` the runtime writes the
    task timeline to ``FILE`` when the run ends, and the head prints how to draw it.

    Parameters
    ----------
    args : argparse.Namespace
        The options.
    config : ShotConfig
        The validated job (identical on every rank).
    """
    import numpy as np

    import mosaic_mpi as mosaic
    from ultrasound.tessera import ShotSolver

    async def main(runtime):
        tic = time.perf_counter()
        workers = runtime.num_workers
        solvers = ShotSolver.remote(**config.solver_arguments(), len=workers)
        await solvers
        tasks = [solvers[k % workers].run_shot(int(source))
                 for k, source in enumerate(config.source_indices)]
        results = await mosaic.gather([task.result() for task in tasks],
                                      progress=PROGRESS[args.progress])
        finish(args, config, np.stack(results), workers, time.perf_counter() - tic)

    started = time.time()
    mosaic.run(main, trace=args.trace)
    # The head only (workers end inside run()); the runtime reports a trace it could not write.
    if args.trace is not None and os.path.isfile(args.trace) \
            and os.path.getmtime(args.trace) >= started - 1:
        print(f'trace       {args.trace} (draw it: python -m mosaic_mpi.trace {args.trace} '
              f'-o timeline.png)')


if __name__ == '__main__':
    arguments, job = prepare()
    if arguments.serial:
        run_serial(arguments, job)
    else:
        require_ranks()
        run_distributed(arguments, job)
