"""Mosaic parity under a real mpiexec: every scenario of mpi_parity.py on 2 and 3 ranks."""

import importlib.util

import pytest

from conftest import HERE, run_mpi

_spec = importlib.util.spec_from_file_location('mpi_parity', HERE / 'mpi_parity.py')
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)


@pytest.mark.parametrize('n', [2, 3])
@pytest.mark.parametrize('case', sorted(_cases.CASES))
def test_case(case, n):
    result = run_mpi([HERE / 'mpi_parity.py', case], n=n)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'CASE {case} PASSED' in result.stdout, result.stdout + result.stderr


def test_progress_bars_are_drawn_when_asked():
    result = run_mpi([HERE / 'mpi_parity.py', 'async_for'], n=2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'zipped: 100%' in result.stderr and '3/3' in result.stderr
    assert 'gather: 100%' in result.stderr and '4/4' in result.stderr
    assert 'loop:' not in result.stderr                # progress=False: no bar
