"""The tutorial script (a Mosaic tutorial script with only the import changed) runs as documented."""

import pytest

from conftest import ROOT, run_mpi


@pytest.mark.parametrize('n', [2, 3])
def test_tutorial_prints_expected_values(n):
    result = run_mpi([ROOT / 'examples' / 'tutorial.py'], n=n)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f'head with {n - 1} workers')
    assert 'after add: [1. 1. 1. 1.]' in lines
    assert 'in order: [11. 11. 11. 11.]' in lines
    assert 'norm of max: 11.0' in lines
    assert 'other total: [3. 3. 3. 3.]' in lines
    assert 'calls on acc: 2' in lines
    assert f'team: {[[0.0, 1.0]] * (n - 1)}' in lines
