"""Start-up modes (SPEC S3, section 0's ``comm=``): spawned workers, ``python -m mosaic_mpi``,
embedding on a sub-communicator, and the errors of each. Every scenario is a real process tree
(``python`` alone for the spawned ones, ``mpiexec`` for the others) with a timeout."""

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from conftest import HERE, ROOT, run_mpi

CASES = HERE / 'startup_cases.py'
EMBEDDING = HERE / 'embedding_cases.py'
MODULE_SCRIPT = HERE / 'module_script.py'


def run_python(args, timeout=120):
    """``python *args`` as a single process (singleton MPI: no mpiexec), with a timeout."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT), env.get('PYTHONPATH', '')])
    try:
        # A session of its own: MPICH's process manager of a singleton that ends without
        # MPI_Finalize kills its whole process group, which must not include pytest.
        return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=env, start_new_session=True)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f'python {args} did not end within {timeout} s\nstdout:\n{error.stdout}\n'
                    f'stderr:\n{error.stderr}')


def lines(result, prefix):
    return [line[len(prefix):].strip() for line in result.stdout.splitlines()
            if line.startswith(prefix)]


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_interactive_on_off_on_off_in_a_running_loop_leaves_no_process_behind():
    result = run_python([CASES, 'interactive'])
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'INTERACTIVE PASSED' in result.stdout
    children = [int(p) for p in lines(result, 'CHILDREN')[0].split()]
    assert len(children) >= 2                   # the two workers (and MPICH's process manager)
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if alive(pid)], 'processes left behind'


def test_interactive_bad_input_and_spawn_unavailable_give_clear_errors():
    result = run_python([CASES, 'bad_input'])
    assert result.returncode == 0, result.stdout + result.stderr
    errors = lines(result, 'NUM_WORKERS')
    assert len(errors) == 3 and all('num_workers must be an integer >= 1' in e for e in errors)
    assert "takes 'on' or 'off', got 'maybe'" in result.stdout
    spawn = lines(result, 'SPAWN')[0]
    assert 'MPI_Comm_spawn' in spawn and 'mpiexec -n 3 python script.py' in spawn


def test_python_script_with_run_num_workers_spawns_the_script_as_workers():
    result = run_python([CASES, 'run_num_workers', 'an-argument'])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count('TOP LEVEL an-argument\n') == 3     # same script, same argv
    assert lines(result, 'WORKERS') == ['2 2 True']
    assert lines(result, 'RESULT') == ['main value']
    assert result.stdout.count('AFTER RUN') == 1                  # code after run(): head only


def test_python_script_with_init_num_workers():
    result = run_python([CASES, 'init_num_workers'])
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result, 'WORKERS') == ['2 2 True']
    assert lines(result, 'INIT') == ['main value']


def test_a_spawned_worker_that_fails_before_joining_ends_the_head_instead_of_hanging():
    result = run_python([CASES, 'child_fails'], timeout=90)
    assert result.returncode != 0
    assert 'RuntimeError: a spawned worker failed before reaching run()' in result.stderr
    assert 'did not join within 8 s' in result.stderr


def test_a_single_process_without_num_workers_says_how_to_start_workers():
    result = run_python([CASES, 'no_workers'])
    assert result.returncode == 0, result.stdout + result.stderr
    message = lines(result, 'NO WORKERS')[0]
    assert 'mpiexec -n N' in message and 'num_workers=W' in message


def facts(result):
    """What rank 0 gathered from every rank and printed as one line (``FACTS <json>``)."""
    return json.loads(lines(result, 'FACTS')[0])


def test_num_workers_that_disagrees_with_mpiexec_is_an_error_on_every_rank():
    result = run_mpi([CASES, 'mismatch'], n=2, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    messages = facts(result)
    assert len(messages) == 2
    assert all(m.startswith('num_workers=5 but the communicator has 2 ranks') and
               'pass num_workers=1' in m for m in messages), messages


def test_python_m_mosaic_mpi_runs_the_script_on_rank_0_only():
    result = run_mpi(['-m', 'mosaic_mpi', MODULE_SCRIPT, 'first', 'second'], n=3, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = lines(result, 'SCRIPT RUNS')
    assert len(runs) == 1 and runs[0].endswith('module_script.py first second')
    assert lines(result, 'MOVED') == ['2 [10, 11] 2']     # script classes reached both workers
    assert result.stdout.count('AFTER RUN') == 1


@pytest.mark.parametrize('how, code', [('no-runtime', 0), ('fail-early', 1)])
def test_python_m_mosaic_mpi_ends_every_rank_when_the_script_starts_no_runtime(how, code):
    result = run_mpi(['-m', 'mosaic_mpi', MODULE_SCRIPT, how], n=3, timeout=60)
    assert result.returncode == code, result.stdout + result.stderr
    assert len(lines(result, 'SCRIPT RUNS')) == 1
    if code:
        assert 'RuntimeError: the script failed before starting a runtime' in result.stderr


def test_embedded_on_a_sub_communicator_while_another_rank_does_its_own_mpi():
    result = run_mpi([EMBEDDING, 'embedded'], n=4, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert facts(result) == [{'head': 'rank 3 summed 19900', 'sum': 6},
                             {'worker_done': 1, 'sum': 6}, {'worker_done': 2, 'sum': 6},
                             {'other': 19900, 'sum': 6}]


def test_mpi_initialised_below_thread_multiple_raises_a_clear_error():
    result = run_mpi([EMBEDDING, 'thread_level'], n=2, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    messages = facts(result)
    assert len(messages) == 2
    for message in messages:
        assert message.startswith('MPI was initialised at thread level MPI_THREAD_SERIALIZED')
        assert "leave mpi4py.rc.thread_level at its default ('multiple')" in message
