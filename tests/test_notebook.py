"""The tutorial notebook runs headless: every cell executed by nbclient on a real ipykernel (whose
``interactive('on')`` spawns the workers), no cell fails, named cells print what they should.

The kernel spec is made here, in a temporary Jupyter data directory, for this very Python: nothing
needs ``jupyter`` installed or ``python -m ipykernel install`` run beforehand (a fresh venv with
the test extras is enough).
"""

import json
import os
import sys
import threading

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOK = ROOT / 'examples' / 'tutorial.ipynb'
KERNEL = 'mosaic-mpi-test'

# cell id -> text its output must contain. Cells not named here must only run without error.
EXPECTED = {
    'start': ['head with 2 workers', "['worker:1', 'worker:2']"],
    'create': ['TesseraProxy worker:1 worker:2'],
    'attribute': ['1048576.0'],
    'calls': ['TaskProxy solve'],
    'await': ['done done'],
    'result': ['(1024, 1024, 1) (1024, 1024, 1)', '2097152.0'],
    'outputs': ['6.0'],
    'done': ['more True'],
    'ordering': ["['solve_more', 'extremes']"],
    'arrays': ['[3.0, 3.0]', '4.0'],
    'warehouse': ["{'a': 1, 'b': 2}\n{'a': 1, 'b': 2}"],
    'publish': ['2097152.0'],
    'drop': ['dropped:'],
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


def test_a_kernel_interrupt_while_calls_are_in_flight_leaves_the_runtime_working(kernel_name):
    """The notebook's interrupt button: SIGINT to the kernel's process group, mid-call."""
    manager, client = start_new_kernel(kernel_name=kernel_name)
    try:
        def cell(code):
            out = []

            def keep(message):
                if message['msg_type'] == 'stream':
                    out.append(message['content']['text'])
                elif message['msg_type'] == 'error':
                    out.append(f"ERROR {message['content']['ename']}")
            client.execute_interactive(code, timeout=60, output_hook=keep)
            return ''.join(out)

        first = cell('import os, time\n'
                     'import mosaic_mpi as mosaic\n'
                     '@mosaic.tessera\n'
                     'class Sleeper:\n'
                     '    def sleep(self, seconds):\n'
                     '        time.sleep(seconds)\n'
                     '        return os.getpid()\n'
                     'runtime = await mosaic.interactive("on", num_workers=2)\n'
                     'sleeper = Sleeper.remote()\n'
                     'print("pid", await sleeper.sleep(0).result())')
        assert first.startswith('pid '), first
        timer = threading.Timer(1.0, manager.interrupt_kernel)
        timer.start()
        interrupted = cell('print(await sleeper.sleep(3).result())')
        timer.join()
        assert 'ERROR' in interrupted, interrupted          # the cell was interrupted
        assert cell('print("pid", await sleeper.sleep(0).result())') == first   # same worker
        assert cell('await mosaic.interactive("off"); print(mosaic.runtime())') == 'None\n'
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
