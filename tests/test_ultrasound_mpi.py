"""The ultrasound example under ``mpiexec -n 3`` gives bit-identical traces to the serial path."""

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'examples')
SCRIPT = os.path.join(EXAMPLES, 'ultrasound_forward_2d.py')
sys.path.insert(0, EXAMPLES)

from ultrasound import build_config, forward_model_serial  # noqa: E402
from ultrasound.output import read_traces  # noqa: E402


def find_mpiexec():
    """The ``mpiexec`` next to the interpreter (a venv's mpich), else the one on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), 'mpiexec')
    return local if os.access(local, os.X_OK) else shutil.which('mpiexec')


MPIEXEC = find_mpiexec()
HAS_RUNTIME = (os.path.exists(os.path.join(ROOT, 'mosaic_mpi', '__init__.py'))
               or importlib.util.find_spec('mosaic_mpi') is not None)


@pytest.mark.skipif(MPIEXEC is None, reason='no mpiexec found')
@pytest.mark.skipif(not HAS_RUNTIME, reason='mosaic_mpi is neither in the tree nor installed')
@pytest.mark.timeout(180)
def test_distributed_traces_equal_serial(tmp_path):
    options = ['--shots', '2', '--steps', '300', '--transducers', '32']
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    version = subprocess.run([MPIEXEC, '--version'], capture_output=True, text=True,
                             timeout=30)
    launcher = [MPIEXEC, '-n', '3']
    if 'Open MPI' in version.stdout + version.stderr:     # 3 ranks may exceed the cores
        launcher.append('--oversubscribe')
    result = subprocess.run([*launcher, sys.executable, SCRIPT, *options,
                             '--output', str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}'
    assert '2 worker(s)' in result.stdout

    expected = forward_model_serial(build_config(shots=2, steps=300, transducers=32))
    traces = read_traces(tmp_path / 'traces.h5')
    assert traces.dtype == np.float32 and traces.shape == (2, 32, 300)
    assert np.array_equal(traces, expected)
    assert (tmp_path / 'shots.png').stat().st_size > 0
