"""The tutorial notebook runs headless: every cell executed by nbclient on a real ipykernel (whose
``interactive('on')`` spawns the workers), no cell fails, named cells print what they should.

The kernel spec is made here, in a temporary Jupyter data directory, for this very Python: nothing
needs ``jupyter`` installed or ``python -m ipykernel install`` run beforehand (a fresh venv with
the test extras is enough).
"""

import json
import os
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOK = ROOT / 'examples' / 'tutorial.ipynb'
KERNEL = 'mosaic-mpi-test'

# cell id -> text its output must contain. Cells not named here must only run without error.
EXPECTED = {
    'start': ['head with 2 workers', "['worker:1', 'worker:2']"],
    'result': ['[1. 1. 1. 1.]'],
    'off': ['runtime after off: None'],
}


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernel spec running ``sys.executable -m ipykernel_launcher``, found via JUPYTER_PATH."""
    spec = tmp_path / 'jupyter' / 'kernels' / KERNEL
    spec.mkdir(parents=True)
    (spec / 'kernel.json').write_text(json.dumps({
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
        'display_name': 'mosaic_mpi tests', 'language': 'python'}))
    monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    return KERNEL


def output_text(cell):
    parts = []
    for output in cell.get('outputs', []):
        if output.output_type == 'stream':
            parts.append(output.text)
        elif output.output_type in ('execute_result', 'display_data'):
            parts.append(output.data.get('text/plain', ''))
    return ''.join(parts)


def test_tutorial_notebook_runs_headless_with_spawned_workers(kernel_name):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, kernel_name=kernel_name, timeout=120,
                            resources={'metadata': {'path': str(ROOT / 'examples')}})
    client.execute()        # raises CellExecutionError, with the cell and traceback, if one fails
    cells = {cell.get('id'): cell for cell in notebook.cells if cell.cell_type == 'code'}
    assert all(cell.get('execution_count') for cell in cells.values()), 'a cell did not run'
    for name, expected in EXPECTED.items():
        assert name in cells, f'no code cell with id {name!r} in {NOTEBOOK.name}'
        text = output_text(cells[name])
        for piece in expected:
            assert piece in text, f'cell {name!r} printed {text!r}, expected {piece!r} in it'
