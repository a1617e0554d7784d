"""A value a method receives is its own: consumers and fetches see results as produced."""

import pytest

from conftest import HERE, run_mpi


@pytest.mark.parametrize('n', [2, 3])
def test_readers_of_a_result_never_share_it(n):
    result = run_mpi([HERE / 'mpi_sharing.py'], n=n, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'SHARING PASSED' in result.stdout
