"""The tutorial script (Stride's tutorial with only the import changed) runs as documented."""

import pytest

from conftest import ROOT, run_mpi


@pytest.mark.parametrize('n', [2, 3])
def test_tutorial_prints_expected_values(n):
    result = run_mpi([ROOT / 'examples' / 'tutorial.py'], n=n)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    workers = [f'worker:{r}' for r in range(1, n)]
    assert f'head with {n - 1} workers: {workers}' in lines
    assert 'attribute: 1048576.0' in lines
    assert 'states: done done' in lines
    assert 'results: (1024, 1024, 1) (1024, 1024, 1) 2097152.0' in lines
    assert 'output: 6.0' in lines
    assert 'done: more True' in lines
    assert "order: ['solve_more', 'extremes']" in lines
    assert f'team: {[3.0] * (n - 1)} 4.0' in lines
    assert "warehouse: {'a': 1, 'b': 2} {'a': 1, 'b': 2}" in lines
    assert 'published: 2097152.0' in lines
    assert 'dropped: KeyError' in lines
    assert '[worker:1] Solve 1' in lines                # worker output, prefixed
