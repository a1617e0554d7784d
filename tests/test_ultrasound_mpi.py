"""The ultrasound example under ``mpiexec -n 3``: bit-identical traces to the serial path, its
task timeline (``--trace``), its progress bar (``--progress``) and its HDF5 layout."""

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest

from conftest import run_mpi

import mosaic_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'examples')
SCRIPT = os.path.join(EXAMPLES, 'ultrasound_forward_2d.py')
sys.path.insert(0, EXAMPLES)

from ultrasound import build_config, forward_model_serial, make_phantom  # noqa: E402
from ultrasound.output import read_traces  # noqa: E402


def test_distributed_traces_equal_serial_with_timeline_progress_and_metadata(tmp_path):
    options = ['--shots', '2', '--steps', '300', '--transducers', '32']
    trace = tmp_path / 'timeline' / 'trace.json'             # its directory is created
    result = run_mpi([SCRIPT, *options, '--output', tmp_path, '--trace', trace,
                      '--progress', 'always'], n=3, timeout=150, cwd=ROOT)
    assert result.returncode == 0, f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}'
    assert '2 worker(s)' in result.stdout

    expected = forward_model_serial(build_config(shots=2, steps=300, transducers=32))
    traces = read_traces(tmp_path / 'traces.h5')
    assert traces.dtype == np.float32 and traces.shape == (2, 32, 300)
    assert np.array_equal(traces, expected)
    assert (tmp_path / 'shots.png').stat().st_size > 0

    # --progress always: tqdm's bar for the batch of 2 shots (redrawn in place: lines cut at
    # carriage returns), from 0/2 to 2/2, and nothing else on stderr
    lines = [line for line in result.stderr.replace('\r', '\n').splitlines() if line.strip()]
    assert lines and all(line.startswith('gather: ') for line in lines), result.stderr
    assert ' 0/2 ' in lines[0] and '100%' in lines[-1] and ' 2/2 ' in lines[-1], result.stderr

    # --trace: a Chrome Trace Event file with the shots on both workers
    assert f'trace       {trace} (draw it: python -m mosaic_mpi.trace {trace}' in result.stdout
    events = json.loads(trace.read_text())['traceEvents']
    names = {e['pid']: e['args']['name'] for e in events if e.get('name') == 'process_name'}
    assert names == {0: 'head', 1: 'worker:1', 2: 'worker:2'}
    tasks = [e for e in events if e['ph'] == 'X']
    assert all(e['dur'] >= 0 and e['ts'] >= 0 for e in tasks)
    shots = [e for e in tasks if e['name'] == 'ShotSolver.run_shot']
    assert sorted(e['pid'] for e in shots) == [1, 2]              # shot k on worker k mod 2 + 1
    assert all(e['args']['bytes_out'] >= 32 * 300 * 4 for e in shots)   # the traces went back
    assert sorted(e['pid'] for e in tasks if e['name'] == 'ShotSolver.__init__') == [1, 2]
    image = tmp_path / 'timeline.png'
    drawn = subprocess.run([sys.executable, '-m', 'mosaic_mpi.trace', str(trace), '-o',
                            str(image)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert drawn.returncode == 0, drawn.stderr
    assert image.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'worker:1 ' in drawn.stdout and 'worker:2 ' in drawn.stdout

    # the HDF5 file: units, the time axis, provenance
    config = build_config(shots=2, steps=300, transducers=32)
    with h5py.File(tmp_path / 'traces.h5', 'r') as f:
        time = f['time'][()]
        assert time.shape == (300,) and time[0] == 0.0
        assert np.allclose(np.diff(time), f.attrs['dt'], rtol=1e-12, atol=0)
        assert f.attrs['dt'] == config.dt and f.attrs['dt_units'] == 's'
        assert f.attrs['duration'] == pytest.approx(300 * config.dt)
        assert f['traces'].dims[2][0] == f['time']           # time is its dimension scale
        assert [d.label for d in f['traces'].dims] == ['shot', 'receiver', 'time']
        assert {name: f[name].attrs['units'] for name in
                ('traces', 'time', 'model', 'positions', 'wavelet')} == dict(
            traces='arbitrary', time='s', model='m/s', positions='m', wavelet='arbitrary')
        assert f.attrs['spacing_units'] == 'm' and f.attrs['frequency_units'] == 'Hz'
        assert f.attrs['mosaic_mpi_version'] == mosaic_mpi.__version__
        command = f.attrs['command_line']
        assert 'ultrasound_forward_2d.py --shots 2 --steps 300' in command
        assert f'--trace {trace}' in command
        created = datetime.fromisoformat(f.attrs['created_utc'])
        assert created.utcoffset().total_seconds() == 0
        assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 3600
        assert f.attrs['model_sha256_of'] == 'array'
        assert f.attrs['model_sha256'] == hashlib.sha256(make_phantom().data.tobytes()).hexdigest()
        assert f.attrs['workers'] == 2 and f.attrs['boundary'] == 'pml'
        assert f.attrs['time_correction'] and f.attrs['pml_reflection'] == 1e-4
        assert (f.attrs['space_order'], f.attrs['stencil']) == (10, 'optimised')


REAL_MODEL = os.environ.get('MOSAIC_MPI_REAL_MODEL', os.path.join(
    os.path.dirname(ROOT), 'shared', 'data', 'anastasio2D-TrueModel.h5'))


@pytest.mark.skipif(not os.path.exists(REAL_MODEL), reason=f'{REAL_MODEL} not present')
def test_real_model_runs_distributed(tmp_path):
    options = ['--model', REAL_MODEL, '--shots', '2', '--steps', '200', '--transducers', '16']
    result = run_mpi([SCRIPT, *options, '--output', tmp_path], n=3, timeout=150, cwd=ROOT)
    assert result.returncode == 0, f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}'
    assert '356 x 385 cells' in result.stdout
    assert 'gather' not in result.stderr          # --progress auto: stderr is not a terminal
    traces = read_traces(tmp_path / 'traces.h5')
    assert traces.shape == (2, 16, 200) and np.isfinite(traces).all() and np.abs(traces).max() > 0
    expected = forward_model_serial(build_config(model=REAL_MODEL, shots=2, steps=200,
                                                 transducers=16))
    assert np.array_equal(traces, expected)
    with h5py.File(tmp_path / 'traces.h5', 'r') as f:
        with open(REAL_MODEL, 'rb') as model:
            assert f.attrs['model_sha256'] == hashlib.sha256(model.read()).hexdigest()
        assert f.attrs['model_sha256_of'] == 'file' and f.attrs['model_source'] == REAL_MODEL
