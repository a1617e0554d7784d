"""Scale: more than 2**31 elements in one array, thousands of tesserae, 100,000 queued tasks."""

import pytest

from conftest import HERE, run_mpi


@pytest.mark.slow
@pytest.mark.timeout(960)
def test_three_gib_array_round_trips_exactly():
    # 9 GB of memory touched for the first time: 60-250 MB/s on a fresh virtual machine.
    result = run_mpi([HERE / 'mpi_scale.py', 'huge'], n=2, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'HUGE PASSED' in result.stdout


def test_two_thousand_tesserae_on_one_worker():
    result = run_mpi([HERE / 'mpi_scale.py', 'tesserae'], n=2, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'TESSERAE PASSED' in result.stdout


def test_hundred_thousand_queued_tasks():
    result = run_mpi([HERE / 'mpi_scale.py', 'tasks', '100000'], n=3, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'TASKS PASSED' in result.stdout
