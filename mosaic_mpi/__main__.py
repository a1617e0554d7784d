"""``python -m mosaic_mpi script.py [args]``: run a script whose rank 0 is the head.

As ``python -m mpi4py.futures script.py`` does for its executors: under ``mpiexec -n N`` every rank
runs this module; rank 0 runs ``script.py`` as ``__main__`` (with ``sys.argv`` set to
``[script.py, args...]``), and the script's ``mosaic_mpi.run(main)`` or ``init()`` works as usual,
with the other N - 1 ranks as its workers. Those ranks run none of the script: they wait for the
head's runtime, serve in it, and end when it stops (or, if the script never starts one, when it
ends). Classes and functions the script defines travel to them by value (cloudpickle), so a script
written for a single process (top-level code without an ``if __name__ == '__main__'`` guard, files
it writes, prints) runs once. One runtime per job: the workers end with the first.

Without ``mpiexec`` (a single process) the script simply runs; ``run(main, num_workers=W)`` in it
then spawns W workers. ``python -m mosaic_mpi --worker`` is how spawned workers start (internal).
"""

import os
import runpy
import sys

from . import api, startup
from .comms import spawn

_USAGE = 'usage: [mpiexec -n N] python -m mosaic_mpi script.py [args ...]'


def _exit_code(exc):
    if isinstance(exc, SystemExit):
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    return 1


def _run_script(script, args):
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))     # as `python script.py` sets it
    runpy.run_path(script, run_name='__main__')


def main(argv=None):
    """Entry point (see the module docstring).

    Parameters
    ----------
    argv : list of str, optional
        ``[script.py, args...]``, or ``['--worker']``; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit code: 0, or 2 for a usage error (a script that raises propagates its exception).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [startup.WORKER_FLAG]:
        api._start(startup.start_spawned_worker)        # serves, then ends the process
        return 0
    if not argv or argv[0] in ('-h', '--help'):
        print(_USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    script, args = argv[0], argv[1:]
    if not os.path.isfile(script):
        print(f'python -m mosaic_mpi: cannot open {script!r}: no such file\n{_USAGE}',
              file=sys.stderr)
        return 2
    spawn.check_thread_level()
    comm = spawn.duplicate_world()
    if comm.Get_size() == 1:
        _run_script(script, args)
        return 0
    if comm.Get_rank() != 0:
        outcome = startup.serve_module_worker(comm)
        if isinstance(outcome, int):
            return outcome
        api._start(lambda: outcome)                      # serves, then ends the process
        return 0
    startup.expect_module_workers(comm)
    code = 0
    try:
        _run_script(script, args)
    except BaseException as exc:
        code = _exit_code(exc)
        raise
    finally:
        startup.release_module_workers(code)
    return 0


if __name__ == '__main__':
    sys.exit(main())
