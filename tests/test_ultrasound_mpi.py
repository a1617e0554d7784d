"""The ultrasound example under ``mpiexec -n 3`` gives bit-identical traces to the serial path."""

import os
import sys

import numpy as np
import pytest

from conftest import run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'examples')
SCRIPT = os.path.join(EXAMPLES, 'ultrasound_forward_2d.py')
sys.path.insert(0, EXAMPLES)

from ultrasound import build_config, forward_model_serial  # noqa: E402
from ultrasound.output import read_traces  # noqa: E402


def test_distributed_traces_equal_serial(tmp_path):
    options = ['--shots', '2', '--steps', '300', '--transducers', '32']
    result = run_mpi([SCRIPT, *options, '--output', tmp_path], n=3, timeout=150, cwd=ROOT)
    assert result.returncode == 0, f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}'
    assert '2 worker(s)' in result.stdout

    expected = forward_model_serial(build_config(shots=2, steps=300, transducers=32))
    traces = read_traces(tmp_path / 'traces.h5')
    assert traces.dtype == np.float32 and traces.shape == (2, 32, 300)
    assert np.array_equal(traces, expected)
    assert (tmp_path / 'shots.png').stat().st_size > 0


REAL_MODEL = os.environ.get('MOSAIC_MPI_REAL_MODEL', os.path.join(
    os.path.dirname(ROOT), 'shared', 'data', 'anastasio2D-TrueModel.h5'))


@pytest.mark.skipif(not os.path.exists(REAL_MODEL), reason=f'{REAL_MODEL} not present')
def test_real_model_runs_distributed(tmp_path):
    options = ['--model', REAL_MODEL, '--shots', '2', '--steps', '200', '--transducers', '16']
    result = run_mpi([SCRIPT, *options, '--output', tmp_path], n=3, timeout=150, cwd=ROOT)
    assert result.returncode == 0, f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}'
    assert '356 x 385 cells' in result.stdout
    traces = read_traces(tmp_path / 'traces.h5')
    assert traces.shape == (2, 16, 200) and np.isfinite(traces).all() and np.abs(traces).max() > 0
    expected = forward_model_serial(build_config(model=REAL_MODEL, shots=2, steps=200,
                                                 transducers=16))
    assert np.array_equal(traces, expected)
