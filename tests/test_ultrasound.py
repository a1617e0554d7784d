"""Tests of the ultrasound example's physics and CLI, in a single process (no runtime)."""

import hashlib
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'examples')
SCRIPT = os.path.join(EXAMPLES, 'ultrasound_forward_2d.py')
# The real model ships in the workplace's shared/ folder beside the checkout (never committed).
REAL_MODEL = os.environ.get('MOSAIC_MPI_REAL_MODEL', os.path.join(
    os.path.dirname(ROOT), 'shared', 'data', 'anastasio2D-TrueModel.h5'))
sys.path.insert(0, EXAMPLES)

from ultrasound import (AcousticSolver2D, ModelError, SoundSpeedModel,  # noqa: E402
                        build_config, cfl_limit, forward_model_serial, load_model,
                        make_phantom, ricker, ring_geometry, shot_sources, stable_time_step,
                        tone_burst)
from ultrasound.discretisation import CFL_SAFETY  # noqa: E402
from ultrasound.output import read_traces, write_traces  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def write_model(path, data, spacing=(5e-4, 5e-4), name='data', step=None, num=None):
    """Write a model in Stride's layout (``spacing=None`` leaves it out)."""
    with h5py.File(path, 'w') as f:
        f.create_dataset(name, data=np.asarray(data))
        if spacing is not None:
            f.create_dataset('space/spacing', data=np.asarray(spacing))
        if step is not None:
            f.create_dataset('time/step', data=step)
        if num is not None:
            f.create_dataset('time/num', data=num)
    return str(path)


def homogeneous(shape=(64, 64), speed=1500.0):
    return np.full(shape, speed, np.float32)


# --- models ------------------------------------------------------------------------------

def test_phantom_is_deterministic_and_in_range():
    a, b = make_phantom(), make_phantom()
    assert np.array_equal(a.data, b.data)
    assert a.data.dtype == np.float32 and a.data.flags.c_contiguous
    assert a.shape == (356, 385) and a.spacing == (5e-4, 5e-4)
    assert a.data.min() == 1460.0 and a.data.max() == 1650.0
    assert a.data[0, 0] == a.data[-1, -1] == 1500.0                 # water
    values, counts = np.unique(a.data, return_counts=True)
    assert counts[values == 1500.0][0] > 0.3 * a.data.size
    assert (a.data > 1580).sum() > 100 and (a.data < 1480).sum() > 1000


@pytest.mark.skipif(not os.path.exists(REAL_MODEL), reason=f'{REAL_MODEL} not present')
def test_load_real_model():
    model = load_model(REAL_MODEL)
    assert model.shape == (356, 385) and model.data.dtype == np.float32
    assert model.spacing == (5e-4, 5e-4)
    assert model.time_step == pytest.approx(8e-8) and model.num_steps == 2500
    assert 1460.0 <= model.data.min() and model.data.max() <= 1650.0
    config = build_config(REAL_MODEL, shots=1, steps=10)
    assert config.dt == pytest.approx(8e-8)                # the file's CFL-safe step is used


def test_load_good_file(tmp_path):
    data = homogeneous((20, 30)) + np.arange(30, dtype=np.float32)
    model = load_model(write_model(tmp_path / 'm.h5', data, (1e-3, 2e-3), step=1e-7, num=12))
    assert np.array_equal(model.data, data) and model.spacing == (1e-3, 2e-3)
    assert (model.time_step, model.num_steps) == (1e-7, 12)


BAD_FILES = {
    'wrong dataset name': (dict(name='speed'), "no dataset 'data'"),
    'NaN': (dict(data=np.where(np.eye(20, dtype=bool), np.nan, 1500.0)), 'non-finite'),
    'inf': (dict(data=np.where(np.eye(20, dtype=bool), np.inf, 1500.0)), 'non-finite'),
    'zero speed': (dict(data=np.where(np.eye(20, dtype=bool), 0.0, 1500.0)), 'non-positive'),
    'negative speed': (dict(data=-homogeneous((20, 20))), 'non-positive'),
    '3D': (dict(data=homogeneous((20, 20))[None].repeat(3, 0)), '3D'),
    '1D': (dict(data=homogeneous((20, 20))[0]), '1D'),
    'too small': (dict(data=homogeneous((4, 20))), 'at least'),
    'missing spacing': (dict(spacing=None), "no dataset 'space/spacing'"),
    'one spacing value': (dict(spacing=[5e-4]), 'spacing must have 2 values'),
    'negative spacing': (dict(spacing=[5e-4, -5e-4]), 'spacing must be finite and > 0'),
    'text spacing': (dict(spacing=[b'a', b'b']), 'spacing must be numbers'),
    'bad time step': (dict(step=-1.0), "'time/step'"),
    'bad time num': (dict(num=2.5), "'time/num'"),
}


@pytest.mark.parametrize('case', sorted(BAD_FILES))
def test_load_rejects_malformed_file(tmp_path, case):
    options, message = BAD_FILES[case]
    options = dict(options)
    data = options.pop('data', homogeneous((20, 20)))
    path = write_model(tmp_path / 'bad.h5', data, **options)
    with pytest.raises(ModelError, match=message) as info:
        load_model(path)
    assert path in str(info.value)


def test_load_rejects_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(ModelError, match='does not exist'):
        load_model(tmp_path / 'absent.h5')
    text = tmp_path / 'text.h5'
    text.write_text('not hdf5')
    with pytest.raises(ModelError, match='not an HDF5 file'):
        load_model(text)


# --- geometry, time step, wavelets --------------------------------------------------------

def test_ring_geometry_is_inside_the_grid():
    geometry = ring_geometry((356, 385), (5e-4, 5e-4), 128, margin=10)
    cells = geometry.cells
    assert cells.shape == (128, 2) and len(np.unique(cells, axis=0)) == 128
    assert cells.min() >= 10 and np.all(cells.max(axis=0) <= np.array([355, 384]) - 10)
    assert np.allclose(geometry.positions, cells * 5e-4)
    with pytest.raises(ValueError, match='share a grid cell'):
        ring_geometry((40, 40), (1e-3, 1e-3), 200)
    sources = shot_sources(4, 128)
    assert sources.tolist() == [0, 32, 64, 96]
    with pytest.raises(ValueError):
        shot_sources(129, 128)


def test_cfl_limit_and_time_step(tmp_path):
    h, c = 5e-4, 1650.0
    assert cfl_limit(c, (h, h), 2) == pytest.approx(h / (np.sqrt(2) * c))
    assert cfl_limit(c, (h, h), 4) == pytest.approx(np.sqrt(3 / 8) * h / c)
    assert stable_time_step(c, (h, h)) == pytest.approx(CFL_SAFETY * cfl_limit(c, (h, h)))
    data = homogeneous((40, 40), c)
    unsafe = 0.99 * cfl_limit(c, (h, h))                   # stable, but above the safety margin
    with pytest.raises(ModelError, match='not CFL-safe'):
        build_config(write_model(tmp_path / 'unsafe.h5', data, step=unsafe), shots=1)
    safe = 0.5 * cfl_limit(c, (h, h))
    config = build_config(write_model(tmp_path / 'safe.h5', data, step=safe, num=50),
                          shots=1, transducers=8)
    assert (config.dt, config.num_steps) == (safe, 50)
    with pytest.raises(ValueError, match='stability limit'):
        AcousticSolver2D(data, (h, h), 1.01 * cfl_limit(c, (h, h)), 10, [[20, 20]])


@pytest.mark.parametrize('order', [2, 4, 8])
def test_cfl_limit_is_the_stability_boundary(monkeypatch, order):
    """Below the limit the field stays bounded; 10% above it, it blows up."""
    import ultrasound.solver as solver

    data, h = homogeneous((48, 48)), 1e-3
    limit = cfl_limit(1500.0, (h, h), order)
    wavelet = ricker(1.5e5, 0.9 * limit, 400)
    peaks = {}
    monkeypatch.setattr(solver, 'cfl_limit', lambda *args: np.inf)
    for factor in (0.99, 1.1):
        run = AcousticSolver2D(data, (h, h), factor * limit, 400, [[24, 24], [10, 30]],
                               absorbing=0, space_order=order)
        with np.errstate(over='ignore', invalid='ignore'):
            peaks[factor] = np.abs(run.run_shot(0, wavelet)).max()
    assert np.isfinite(peaks[0.99]) and peaks[0.99] < 10
    assert not np.isfinite(peaks[1.1]) or peaks[1.1] > 1e6


def test_wavelets():
    dt, f = 1e-8, 5e5
    w = ricker(f, dt, 1000)
    assert w.dtype == np.float32 and w.shape == (1000,)
    assert np.argmax(w) == 300 and w[300] == pytest.approx(1.0)  # peak at 1.5 / f
    assert abs(w[0]) < 1e-7
    b = tone_burst(f, dt, 1000, cycles=3)
    assert b[0] == 0 and np.all(b[601:] == 0) and 0.9 < np.abs(b).max() <= 1


# --- solver physics ------------------------------------------------------------------------

def green_2d(wavelet, dt, distance, speed):
    """Exact response of ``p_tt = c^2 (laplacian p + s(t) delta(x))`` in 2D.

    The Green's function of ``c^-2 d_tt - laplacian`` in 2D is
    ``H(t - r/c) / (2 pi sqrt(t^2 - r^2/c^2))`` (e.g. Morse & Feshbach (1953), ch. 7);
    it is integrated exactly over each time step (its primitive is ``arccosh(c t / r)``)
    and convolved with the wavelet.
    """
    edges = (np.arange(wavelet.size + 1) - 0.5) * dt
    primitive = np.arccosh(np.maximum(edges * speed / distance, 1.0))
    return np.convolve(wavelet.astype(float), np.diff(primitive))[:wavelet.size] / (2 * np.pi)


@pytest.mark.parametrize('order,speed,frequency,misfit', [
    (4, 1500.0, 5e5, None), (2, 1500.0, 2.5e5, None), (4, 1600.0, 2.5e5, 0.2),
    (8, 1500.0, 5e5, None), (8, 1500.0, 3e5, 0.25)])
def test_arrivals_match_the_2d_greens_function(order, speed, frequency, misfit):
    """Homogeneous medium: peak arrival at distance d (along x and y) within 3 steps of the
    exact solution, itself within 3 steps of t0 + d / c; waveform close where the grid
    resolves the wavelet well (dispersion makes 4th order at 500 kHz ring behind the peak).
    """
    spacing = (5e-4, 6e-4)                                # unequal, to catch swapped axes
    source = np.array([60, 60])
    offsets = [(20, 0), (50, 0), (0, 20), (0, 45)]
    cells = np.vstack([source, source + np.array(offsets)])
    dt, steps = stable_time_step(speed, spacing, order), 350
    solver = AcousticSolver2D(homogeneous((120, 120), speed), spacing, dt, steps, cells,
                              absorbing=20, space_order=order)
    wavelet = ricker(frequency, dt, steps)
    traces = solver.run_shot(0, wavelet)
    for receiver, (i, j) in enumerate(offsets, start=1):
        distance = np.hypot(i * spacing[0], j * spacing[1])
        exact = green_2d(wavelet, dt, distance, speed)
        assert abs(np.argmax(traces[receiver]) - np.argmax(exact)) <= 3, receiver
        assert abs(np.argmax(exact) - (1.5 / frequency + distance / speed) / dt) <= 3
        if misfit is not None:
            error = np.linalg.norm(traces[receiver] - exact) / np.linalg.norm(exact)
            assert error < misfit, (receiver, error)
            assert traces[receiver].max() == pytest.approx(exact.max(), rel=0.06)


def test_absorbing_layer_removes_boundary_reflections():
    """Compare with a reference on a grid large enough that no reflection arrives."""
    h, speed, steps, pad = 5e-4, 1500.0, 500, 260
    cells = np.array([[50, 50], [50, 70], [50, 90], [80, 50]])
    dt = stable_time_step(speed, (h, h))
    wavelet = ricker(5e5, dt, steps)
    reference = AcousticSolver2D(homogeneous((100 + 2 * pad,) * 2, speed), (h, h), dt, steps,
                                 cells + pad, absorbing=0).run_shot(0, wavelet)
    error = {}
    for width in (0, 20):
        traces = AcousticSolver2D(homogeneous((100, 100), speed), (h, h), dt, steps, cells,
                                  absorbing=width).run_shot(0, wavelet)
        error[width] = np.abs(traces - reference)[1:].max() / np.abs(reference[1:]).max()
    assert error[0] > 0.3                                  # the rigid edge reflects strongly
    assert error[20] < 0.02 and error[20] < error[0] / 30


def test_reciprocity_and_determinism_in_the_phantom():
    """Source i / receiver j equals source j / receiver i (symmetric discrete operator)."""
    model = make_phantom(shape=(96, 104), spacing=(1e-3, 1e-3))
    config = build_config(model, shots=4, transducers=24, frequency=2e5, absorbing=20)
    traces = forward_model_serial(config)
    assert traces.shape == (4, 24, config.num_steps) and traces.dtype == np.float32
    assert np.array_equal(traces, forward_model_serial(config))
    sources = config.source_indices
    for a in range(4):
        for b in range(a + 1, 4):
            forward, backward = traces[a, sources[b]], traces[b, sources[a]]
            assert np.abs(forward - backward).max() < 1e-4 * np.abs(forward).max()


def test_default_configuration():
    config = build_config()
    assert config.model.source == '<phantom>' and config.num_shots == 128
    assert (config.stencil, config.space_order, config.frequency) == ('optimised', 10, 5e5)
    assert config.dt == pytest.approx(stable_time_step(1650.0, (5e-4, 5e-4), 10,
                                                       stencil='optimised'))
    crossing = 384 * 5e-4 / 1460.0
    assert crossing < config.num_steps * config.dt < crossing + 10e-6
    with pytest.raises(ValueError, match='cells per wavelength'):
        build_config(frequency=5e6)


# --- outputs and CLI -----------------------------------------------------------------------

LAUNCHER_RANKS = ('PMI_RANK', 'OMPI_COMM_WORLD_RANK', 'SLURM_PROCID')
QUICK = ('--shots', '1', '--steps', '10', '--transducers', '8')


def run_script(*args, rank=None):
    """Run the script in one process (no mpiexec), as launcher rank ``rank`` if given."""
    env = {name: value for name, value in os.environ.items() if name not in LAUNCHER_RANKS}
    if rank is not None:
        env['PMI_RANK'] = str(rank)
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, env=env)


def assert_one_error_line(result, *fragments):
    """Exit code 2 and exactly one ``error:`` line on stderr, holding every fragment."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_cli_bad_model_exits_2_without_traceback(tmp_path):
    bad = write_model(tmp_path / 'bad.h5', homogeneous((20, 20)), spacing=None)
    for path in (bad, str(tmp_path / 'missing.h5')):
        result = run_script('--model', path, '--output', str(tmp_path / 'out'))
        assert result.returncode == 2, result.stderr
        assert path in result.stderr and 'Traceback' not in result.stderr
    assert not (tmp_path / 'out').exists()
    assert run_script('--shots', '0').returncode == 2


def test_cli_bad_output_directory_fails_before_computing(tmp_path):
    """Refused up front (exit 2, one line naming the path), not after the shots."""
    regular = tmp_path / 'file.txt'
    regular.write_text('not a directory')
    bad = [str(regular), str(regular / 'sub')]
    if os.path.isdir('/proc'):
        bad += ['/proc/nope', '/proc']          # cannot be created; no file can be created in it
    if os.geteuid() != 0:                       # root may write in any directory
        read_only = tmp_path / 'read-only'
        read_only.mkdir(mode=0o500)
        bad.append(str(read_only))
    for path in bad:
        for mode in (['--serial'], []):
            result = run_script(*QUICK, *mode, '--output', path)
            assert_one_error_line(result, repr(path), 'output directory')
            assert result.stdout == ''
    created = tmp_path / 'new' / 'nested'
    result = run_script(*QUICK, '--serial', '--output', str(created))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(created)) == ['shots.png', 'traces.h5']   # no write-test left


def test_cli_single_process_without_serial_says_how_to_launch(tmp_path):
    result = run_script(*QUICK, '--output', str(tmp_path))
    assert_one_error_line(result, 'at least 2 ranks', 'mpiexec -n 3', '--serial')
    assert 'Traceback' not in result.stderr and result.stdout == ''
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('options', [('--shots', '0'), ('--shots', 'x'), ('--bogus',),
                                     ('--wavelet', 'sine')])
def test_cli_errors_are_printed_by_rank_0_only(options):
    """Every rank exits 2; only rank 0 prints (argparse's usage errors included)."""
    quiet = run_script(*options, rank=1)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (2, '', '')
    loud = run_script(*options)
    assert loud.returncode == 2 and 'error: ' in loud.stderr and loud.stdout == ''
    assert 'Traceback' not in loud.stderr
    assert run_script(*options, rank=0).stderr == loud.stderr


def test_cli_help_is_printed_by_rank_0_only():
    quiet = run_script('--help', rank=2)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, '', '')
    loud = run_script('--help')
    assert loud.returncode == 0 and '--serial' in loud.stdout and loud.stderr == ''
    assert loud.stdout.count('usage:') == 1


def test_cli_serial_writes_outputs(tmp_path):
    options = ['--shots', '2', '--steps', '120', '--transducers', '16']
    result = run_script(*options, '--serial', '--output', str(tmp_path))
    assert result.returncode == 0, result.stderr
    expected = forward_model_serial(build_config(shots=2, steps=120, transducers=16))
    assert np.array_equal(read_traces(tmp_path / 'traces.h5'), expected)
    with h5py.File(tmp_path / 'traces.h5', 'r') as f:
        assert f['positions'].shape == (16, 2) and f['source_indices'][()].tolist() == [0, 8]
        assert f['model'].shape == (356, 385) and f.attrs['frequency'] == 5e5
    assert (tmp_path / 'shots.png').stat().st_size > 10000


def test_write_traces_checks_shape(tmp_path):
    config = build_config(SoundSpeedModel(homogeneous((40, 40)), (1e-3, 1e-3)), shots=1,
                          steps=5, transducers=8, frequency=1e5)
    with pytest.raises(ValueError, match='expected'):
        write_traces(tmp_path / 't.h5', config, np.zeros((1, 8, 4), np.float32))


def test_write_traces_records_units_time_axis_and_provenance(tmp_path):
    from ultrasound.output import model_checksum, provenance

    path = write_model(tmp_path / 'model.h5', homogeneous((40, 40)), spacing=(1e-3, 1e-3))
    config = build_config(path, shots=1, steps=7, transducers=8, frequency=1e5)
    digest, of = model_checksum(config.model)
    with open(path, 'rb') as f:
        assert (digest, of) == (hashlib.sha256(f.read()).hexdigest(), 'file')
    record = provenance(config, argv=['job.py', '--name', 'two words'], workers=3)
    assert record['command_line'].endswith("job.py --name 'two words'")
    traces = np.zeros((1, 8, 7), np.float32)
    write_traces(tmp_path / 't.h5', config, traces, provenance=record)
    with h5py.File(tmp_path / 't.h5', 'r') as f:
        assert f['time'][()].tolist() == [n * config.dt for n in range(7)]
        assert f['time'].attrs['units'] == 's' and f['traces'].attrs['units'] == 'arbitrary'
        assert f.attrs['model_sha256'] == digest and f.attrs['workers'] == 3
        assert f.attrs['absorbing_units'] == 'cells' and f.attrs['num_steps'] == 7
    # an array model (no file) is checksummed by its float32 bytes
    array_model = SoundSpeedModel(homogeneous((40, 40)), (1e-3, 1e-3))
    assert model_checksum(array_model) == (
        hashlib.sha256(homogeneous((40, 40)).tobytes()).hexdigest(), 'array')


def test_cli_trace_needs_the_runtime_and_a_writable_place(tmp_path):
    result = run_script(*QUICK, '--serial', '--trace', str(tmp_path / 't.json'),
                        '--output', str(tmp_path / 'out'))
    assert_one_error_line(result, '--trace', '--serial')
    regular = tmp_path / 'file.txt'
    regular.write_text('not a directory')
    for path in (regular / 'trace.json', tmp_path):
        result = run_script(*QUICK, '--trace', str(path), '--output', str(tmp_path / 'out'))
        assert_one_error_line(result, repr(str(path)), 'trace file')
    result = run_script(*QUICK, '--progress', 'sometimes')
    assert result.returncode == 2 and "invalid choice: 'sometimes'" in result.stderr
