"""The README's warehouse snippet runs as printed and prints what its comments say."""

import re

import pytest

from conftest import ROOT, run_mpi


def _snippet():
    text = (ROOT / 'README.md').read_text()
    section = text[text.index('\n## Warehouse\n'):]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


@pytest.mark.parametrize('n', [2, 3])
def test_readme_warehouse_snippet_runs(tmp_path, n):
    script = tmp_path / 'warehouse.py'
    script.write_text(_snippet())
    result = run_mpi([script], n=n, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ['True', '1.0 1000000', 'worker:1 10.0'], result.stdout
    assert lines[3].startswith('dropped: ') and 'was dropped' in lines[3]
