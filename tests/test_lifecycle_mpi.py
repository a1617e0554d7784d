"""Every way a run ends ends every rank within seconds, with the right exit code and message."""

import os
import signal
import subprocess
import time

import pytest

from conftest import HERE, mpi_command, run_mpi

SCRIPT = HERE / 'mpi_lifecycle.py'


def run(args, n=3, deadline=60):
    """The scenario's CompletedProcess; fails if the job is not over within ``deadline`` s."""
    return run_mpi([SCRIPT, *args], n=n, timeout=deadline)


def test_exception_in_main_while_a_worker_is_busy_shows_it_and_ends():
    result = run(['main_raises_while_worker_busy'], deadline=30)   # tasks of 60 s
    assert result.returncode != 0
    assert 'ValueError: bad input in main' in result.stderr


@pytest.mark.parametrize('attempt', range(3))
def test_exception_in_main_before_queued_calls_start_ends_quickly(attempt):
    result = run(['main_raises_with_calls_queued'], deadline=30)   # tasks of 60 s
    assert result.returncode == 1, result.stderr
    assert "KeyError: 'immediate'" in result.stderr


def test_sys_exit_in_main_while_a_worker_is_busy_keeps_the_code():
    result = run(['main_exit_code_while_busy'], deadline=30)   # tasks of 60 s
    assert result.returncode == 4, result.stderr


def test_results_and_errors_that_cannot_be_rebuilt_raise_instead_of_hanging():
    result = run(['main_odd_results'])
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'ODD RESULTS PASSED' in result.stdout


def test_a_failure_nobody_awaited_is_reported_once():
    result = run(['main_unseen_failure'], n=2)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count('failed and nobody awaited it') == 1, result.stderr
    assert 'Busy.quit' in result.stderr and 'SystemExit: 5' in result.stderr


def test_two_step_use_with_an_error_before_stop_ends_every_rank():
    result = run(['two_step_raises'], deadline=30)   # tasks of 60 s
    assert result.returncode == 1, result.stderr
    assert 'RuntimeError: error in the head script before stop()' in result.stderr


def test_two_step_use_without_stop_still_waits_and_ends():
    result = run(['two_step_forgets_stop'])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('FORGOT STOP') == 1


def test_a_second_run_is_refused_with_a_clear_error():
    result = run(['run_twice'])
    assert result.returncode == 0, result.stderr
    assert 'SECOND RUN REFUSED' in result.stdout and 'once per process' in result.stdout


def test_a_bad_setting_is_reported_once_not_once_per_rank():
    result = run(['bad_setting'], n=3)
    assert result.returncode != 0
    assert result.stderr.count('Traceback') == 1, result.stderr
    assert 'unknown mosaic_mpi configuration key(s): max_pendng' in result.stderr


def test_log_level_makes_the_runtime_logs_visible():
    result = run(['logs_visible'], n=2)
    assert result.returncode == 0, result.stderr
    assert '[head] DEBUG mosaic_mpi' in result.stderr
    assert '[worker:1] DEBUG mosaic_mpi' in result.stderr


def test_exception_in_main_during_big_worker_to_worker_transfers_ends_with_code_1():
    result = run(['main_raises_during_big_transfers'], deadline=40)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count('ValueError: main failed during transfers') == 1, result.stderr
    assert result.stderr.count('Traceback') == 1
    assert 'unfinished sends' not in result.stderr


def test_an_error_in_a_workers_runtime_is_reported_and_ends_the_job():
    result = run(['main_breaks_a_worker_runtime'], n=2, deadline=40)
    assert result.returncode != 0
    assert 'progress of rank 1 failed' in result.stderr, result.stderr
    assert 'KeyError' in result.stderr and 'Traceback' in result.stderr


@pytest.mark.parametrize('sig, group', [(signal.SIGINT, True), (signal.SIGINT, False),
                                        (signal.SIGTERM, False)])
def test_a_signal_ends_every_rank(sig, group):
    # group: Ctrl-C in a terminal (the whole process group); else to mpiexec alone, as a batch
    # system does. The deadline is process.wait's: a rank that survives fails the test.
    command, env = mpi_command([SCRIPT, 'main_sleeps'], n=3)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        line = ''
        while 'READY' not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
        assert 'READY' in line
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        process.wait(timeout=30)
        assert process.returncode != 0
        assert process.stderr.read().count('Traceback') <= 1    # the head's, not one per rank
        for _ in range(50):
            left = subprocess.run(['pgrep', '-f', f'{SCRIPT} main_sleeps'], capture_output=True,
                                  text=True)
            if not left.stdout.strip():
                break
            time.sleep(0.2)
        assert left.stdout.strip() == '', f'ranks left behind: {left.stdout}'
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
