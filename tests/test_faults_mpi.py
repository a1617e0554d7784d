"""Failures that surface instead of hanging, under a real mpiexec (scenarios in mpi_faults.py)."""

import importlib.util

import pytest

from conftest import HERE, run_mpi

_spec = importlib.util.spec_from_file_location('mpi_faults', HERE / 'mpi_faults.py')
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)


ENV = {'back_pressure': {'MOSAIC_MPI_MAX_PENDING': '50'},
       'actor_calls_are_never_held_back': {'MOSAIC_MPI_MAX_PENDING': '10'}}


@pytest.mark.parametrize('case', sorted(_cases.CASES))
def test_case(case):
    result = run_mpi([HERE / 'mpi_faults.py', case], n=3, env=ENV.get(case))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'CASE {case} PASSED' in result.stdout, result.stdout + result.stderr


def test_proxies_of_an_earlier_run_raise_instead_of_reaching_the_new_one():
    result = run_mpi([HERE / 'mpi_stale.py'], n=2)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for what in ('call', 'attr', 'old result'):
        assert any(line.startswith(f'{what} RuntimeNotRunning') for line in lines), result.stdout
    assert 'GOT' not in result.stdout
