"""A worker that dies mid-task: the head names it and its tasks, and the job ends non-zero."""

import subprocess
import time

import pytest

from conftest import HERE, _is_openmpi, mpi_command, mpiexec

SCRIPT = HERE / 'mpi_lost.py'


def launch(how, keep_others=True, timeout=40):
    command, env = mpi_command([SCRIPT, how], n=3)
    openmpi = _is_openmpi(mpiexec())
    if keep_others:     # the launcher settings that leave the head alive to report the loss
        command.insert(1, '--enable-recovery' if openmpi else '-disable-auto-cleanup')
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env=env)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f'the job did not end within {timeout} s after a worker died:\n'
                    f'{error.stdout}\n{error.stderr}')
    deadline = time.monotonic() + 10          # ranks may take a moment to be reaped
    while True:
        left = subprocess.run(['pgrep', '-f', str(SCRIPT)], capture_output=True, text=True)
        if not left.stdout.strip() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left.stdout.strip() == '', f'processes left behind: {left.stdout}'
    return result, openmpi


def test_a_worker_that_exits_is_named_with_its_tasks():
    result, _ = launch('exit')
    assert result.returncode != 0
    out = result.stdout
    assert 'LOST: Doomed.die (task' in out and 'worker:2 was lost' in out, out + result.stderr
    assert 'ALSO LOST: Doomed.nap (task' in out                  # queued behind it
    assert 'ALIVE 0.1' in out                                    # the other worker still serves
    assert 'REFUSED: Doomed.nap: worker:2 was lost' in out       # new calls raise at the call
    assert 'worker:2 (rank 2) was lost' in result.stderr
    assert 'tasks of the head that were on it: Doomed.die (task' in result.stderr


@pytest.mark.parametrize('how', ['kill', 'segv'])
def test_a_worker_killed_by_a_signal_ends_the_job(how):
    result, openmpi = launch(how)
    assert result.returncode != 0
    if openmpi:         # Open MPI with --enable-recovery leaves the head alive to say it
        assert 'worker:2 (rank 2) was lost' in result.stderr, result.stdout + result.stderr
        assert 'LOST: Doomed.die' in result.stdout


def test_without_the_launcher_setting_the_launcher_ends_the_job():
    result, _ = launch('exit', keep_others=False)
    assert result.returncode != 0


def test_a_safe_async_for_carries_on_without_a_lost_worker():
    result, _ = launch('loop')
    assert result.returncode != 0                                 # a worker was lost: non-zero
    assert 'LOOP RESULTS 5' in result.stdout, result.stdout + result.stderr   # item 1 dropped
    assert 'BARRIER RETURNED' in result.stdout
    assert 'item 1 dropped' in result.stderr


def test_the_borrows_of_a_lost_worker_end():
    result, _ = launch('borrower')
    assert 'LEFT AFTER THE BORROWER WAS LOST 0' in result.stdout, result.stdout + result.stderr


def test_new_tesserae_go_on_the_workers_left():
    result, _ = launch('placement')
    output = result.stdout + result.stderr
    assert result.returncode != 0, output                         # a worker was lost: non-zero
    assert 'PLAIN ON True' in result.stdout, output
    assert 'ARRAY ON True' in result.stdout, output
    assert result.stdout.count('FETCH REFUSED: Doomed.nap (task') == 2, output
    assert 'which was lost' in result.stdout and 'FETCH KEPT 0' in result.stdout, output
    assert ('REFUSED: Summer.remote(len=2, collective=True) needs 2 distinct workers, but only '
            '1 are left (worker:2 lost)') in result.stdout, output
    assert 'COLLECTIVE [1.0]' in result.stdout, output
    assert ("REFUSED CALL: Summer.allreduce: the collective array's members on worker:2 were "
            "lost") in result.stdout, output
