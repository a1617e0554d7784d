"""Distributed reference counting under a real mpiexec (scenarios in mpi_borrowers.py)."""

import importlib.util

import pytest

from conftest import HERE, run_mpi

_spec = importlib.util.spec_from_file_location('mpi_borrowers', HERE / 'mpi_borrowers.py')
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)


@pytest.mark.parametrize('case', sorted(_cases.CASES))
def test_case(case):
    result = run_mpi([HERE / 'mpi_borrowers.py', case], n=3)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'CASE {case} PASSED' in result.stdout, result.stdout + result.stderr
