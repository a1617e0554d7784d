"""The runtime under a real mpiexec: every scenario of mpi_cases.py on 2 and 3 ranks."""

import pytest

from conftest import HERE, run_mpi

import importlib.util

_spec = importlib.util.spec_from_file_location('mpi_cases', HERE / 'mpi_cases.py')
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)

SPECIAL = {'drain', 'main_raises', 'main_exit_code'}
CASES = sorted(set(_cases.CASES) - SPECIAL)


@pytest.mark.parametrize('n', [2, 3])
@pytest.mark.parametrize('case', CASES)
def test_case(case, n):
    result = run_mpi([HERE / 'mpi_cases.py', case], n=n)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'CASE {case} PASSED' in result.stdout, result.stdout + result.stderr


def test_calls_never_awaited_still_run_before_stop(tmp_path):
    log = tmp_path / 'log.txt'
    result = run_mpi([HERE / 'mpi_cases.py', 'drain'], n=3, env={'CASE_LOG': str(log)})
    assert result.returncode == 0, result.stderr
    assert log.read_text().split() == [str(i) for i in range(20)] + ['end']


@pytest.mark.parametrize('n', [2, 3])
def test_exception_in_main_stops_every_rank_nonzero(n):
    result = run_mpi([HERE / 'mpi_cases.py', 'main_raises'], n=n, timeout=60)
    assert result.returncode != 0
    assert 'RuntimeError: main failed on purpose' in result.stderr


def test_sys_exit_code_in_main_is_the_exit_code():
    result = run_mpi([HERE / 'mpi_cases.py', 'main_exit_code'], n=3, timeout=60)
    assert result.returncode == 3, result.stderr


def test_too_few_ranks_is_a_clear_error():
    result = run_mpi([HERE / 'mpi_cases.py', 'gather'], n=1, timeout=60)
    assert result.returncode != 0
    assert 'needs at least 2 ranks' in result.stderr


@pytest.mark.parametrize('n', [2, 3])
def test_init_then_stop_from_synchronous_code(n):
    result = run_mpi([HERE / 'mpi_init_stop.py'], n=n)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count('INIT STOP PASSED') == 1, result.stdout   # only the head goes on


@pytest.mark.parametrize('n', [2, 3])
def test_random_call_graphs_match_local_runs(n):
    result = run_mpi([HERE / 'mpi_graphs.py', 'graphs'], n=n, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'GRAPHS PASSED' in result.stdout


def test_concurrent_submitters_keep_order_and_results():
    result = run_mpi([HERE / 'mpi_graphs.py', 'concurrency'], n=3, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'CONCURRENCY PASSED' in result.stdout


def test_published_values_broadcast_in_chunks_arrive_whole():
    # max_chunk below the values' sizes: each buffer is several broadcasts, posted in one order
    result = run_mpi([HERE / 'mpi_cases.py', 'warehouse_publish'], n=3,
                     env={'MOSAIC_MPI_MAX_CHUNK': '1000000'})
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'CASE warehouse_publish PASSED' in result.stdout
