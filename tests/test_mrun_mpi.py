"""mrun for real on this machine: the tutorial's output, the exit code, SIGINT ending the job."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import HERE, ROOT

SCHEDULER_VARIABLES = ('SLURM_JOB_ID', 'SLURM_JOB_NODELIST', 'SLURM_NODELIST', 'PBS_NODEFILE')


def mrun_command(*args):
    """``mrun ARGS`` as this Python runs it, and an environment without any batch allocation."""
    env = {k: v for k, v in os.environ.items() if k not in SCHEDULER_VARIABLES}
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT), env.get('PYTHONPATH', '')])
    env.setdefault('OMPI_ALLOW_RUN_AS_ROOT', '1')             # harmless for MPICH
    env.setdefault('OMPI_ALLOW_RUN_AS_ROOT_CONFIRM', '1')
    return [sys.executable, '-m', 'mosaic_mpi.cli.mrun', *map(str, args)], env


def run_mrun(*args, timeout=90):
    command, env = mrun_command(*args)
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=ROOT)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f'{" ".join(command)} did not end within {timeout} s\n'
                    f'stdout:\n{error.stdout}\nstderr:\n{error.stderr}')


def test_mrun_runs_the_tutorial_with_two_workers():
    result = run_mrun('-nw', '2', sys.executable, 'examples/tutorial.py')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in ("head with 2 workers: ['worker:1', 'worker:2']", 'attribute: 1048576.0',
                     'output: 6.0', 'done: more True', "order: ['solve_more', 'extremes']",
                     'team: [3.0, 3.0] 4.0', 'published: 2097152.0', 'dropped: KeyError'):
        assert expected in lines, result.stdout


def test_mrun_sets_the_threads_of_every_rank(tmp_path):
    # each rank writes its own file: hydra interleaves the ranks' stdout even within lines
    probe = ('import os, sys; from mpi4py import MPI; '
             'open(os.path.join(sys.argv[1], str(MPI.COMM_WORLD.Get_rank())), "w").write('
             '" ".join(os.environ[k] for k in sys.argv[2:]))')
    result = run_mrun('-nw', '1', '-nth', '3', sys.executable, '-c', probe, tmp_path,
                      'OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS',
                      'NUMBA_NUM_THREADS')
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['0', '1']
    assert [(tmp_path / r).read_text() for r in '01'] == ['3 3 3 3'] * 2


def test_mrun_passes_the_exit_code_through():
    result = run_mrun('-nw', '2', sys.executable, HERE / 'mpi_cases.py', 'main_exit_code',
                      timeout=60)
    assert result.returncode == 3, result.stderr


def test_sigint_to_mrun_alone_ends_the_job():
    command, env = mrun_command('-nw', '2', sys.executable, HERE / 'mpi_lifecycle.py',
                                'main_sleeps')
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        line = ''
        while 'READY' not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        assert 'READY' in line, process.stderr.read() if process.poll() is not None else ''
        process.send_signal(signal.SIGINT)           # to mrun only, not its process group
        process.wait(timeout=30)                     # the head would otherwise sleep 60 s
        assert process.returncode != 0, process.stderr.read()   # hydra: 130 (128 + SIGINT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
