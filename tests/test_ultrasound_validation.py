"""The job's physics at its defaults, against the exact 2D solution (small grids, one process).

The figures asserted are the issue's acceptance criteria (normalised cross-correlation >= 0.99
and peak arrival within 1 sample across the ring; boundary returns <= -40 dB of the direct
peak at the default frequency and at half of it, normal and grazing incidence), measured by
``examples/ultrasound/validate.py`` on grids small enough for a test.
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, 'examples')
sys.path.insert(0, EXAMPLES)

from ultrasound import AcousticSolver2D, SoundSpeedModel, build_config, ricker  # noqa: E402
from ultrasound.discretisation import (LAPLACIAN_WEIGHTS, accurate_band,  # noqa: E402
                                       cfl_limit, phase_velocity_error, stable_time_step,
                                       taylor_weights)
from ultrasound.job import DEFAULTS, DispersionWarning, dispersion_check  # noqa: E402
from ultrasound.validate import (accuracy, boundary_returns, decay_slope,  # noqa: E402
                                 exact_trace)

pytestmark = pytest.mark.timeout(240)


def test_exact_trace_matches_the_time_domain_greens_function():
    """The Hankel form equals H(t - r/c) / (2 pi sqrt(t^2 - r^2/c^2)) integrated per step."""
    dt, steps, c, r = 1e-7, 600, 1500.0, 0.03
    wavelet = ricker(5e5, dt, steps)
    edges = (np.arange(steps + 1) - 0.5) * dt
    primitive = np.arccosh(np.maximum(edges * c / r, 1.0))
    direct = np.convolve(wavelet.astype(float), np.diff(primitive))[:steps] / (2 * np.pi)
    hankel = exact_trace(wavelet, dt, r, c)
    assert np.abs(hankel - direct).max() < 0.02 * np.abs(direct).max()
    assert abs(np.argmax(hankel) - np.argmax(direct)) <= 1


def test_accuracy_across_the_ring_at_the_defaults():
    result = accuracy((140, 150), sources=(0, 16), transducers=64)
    config, rows = result['config'], result['rows']
    assert (config.stencil, config.space_order) == ('optimised', DEFAULTS['space_order'])
    assert config.frequency == DEFAULTS['frequency'] and config.absorbing == 40
    far = [row for row in rows if row['distance'] >= 0.9 * rows[-1]['distance']]
    assert rows[-1]['distance'] > 0.06 and len(far) >= 10
    for row in rows:
        assert abs(row['arrival']) <= 1.0, row
        assert row['ncc'] >= 0.99, row
        assert abs(row['amplitude']) < 0.05, row
    slope = decay_slope([r['distance'] for r in rows], [r['peak'] for r in rows])
    assert slope == pytest.approx(-0.5, abs=0.05)


def test_without_the_time_correction_the_far_side_is_wrong():
    """The correction is what makes the defaults accurate (the figures would fail without it)."""
    model = SoundSpeedModel(np.full((140, 150), 1500.0, np.float32), (5e-4, 5e-4))
    config = build_config(model, shots=1, transducers=64)
    results = {}
    for corrected in (True, False):
        solver = AcousticSolver2D(model.data, model.spacing, config.dt, config.num_steps,
                                  config.geometry.cells, space_order=config.space_order,
                                  stencil=config.stencil, time_correction=corrected)
        trace = solver.run_shot(0, config.wavelet)[32]
        distance = np.hypot(*(config.geometry.positions[32] - config.geometry.positions[0]))
        exact = exact_trace(config.wavelet, config.dt, distance, 1500.0)
        results[corrected] = trace @ exact / np.sqrt((trace @ trace) * (exact @ exact))
    assert results[True] > 0.99 > results[False]


@pytest.mark.parametrize('frequency', [DEFAULTS['frequency'], DEFAULTS['frequency'] / 2])
def test_boundary_returns_are_below_minus_40_db(frequency):
    result = boundary_returns(frequency, size=(60, 120))
    assert result['normal'] <= -40.0 and result['grazing'] <= -40.0, result['details']
    assert {kind for kind, _, _ in result['details']} == {'normal', 'grazing'}


def test_pml_stays_stable_over_a_long_record():
    """Energy leaves the grid and does not come back or grow (about 200 crossings of it)."""
    h, c, steps = 5e-4, 1500.0, 6000
    dt = stable_time_step(c, (h, h), 10, stencil='optimised')
    solver = AcousticSolver2D(np.full((48, 48), c, np.float32), (h, h), dt, steps,
                              [[24, 24], [12, 30]], space_order=10, stencil='optimised')
    traces = solver.run_shot(0, ricker(5e5, dt, steps))
    assert np.isfinite(traces).all()
    late = np.abs(traces[1]).reshape(6, 1000).max(axis=1)[1:]    # after the direct wave
    assert late.max() < 1e-3 * np.abs(traces[1]).max()
    assert np.all(np.diff(late) <= 0.02 * late[0]), late            # decays, never grows


def test_stencils_and_the_points_per_wavelength_rule():
    for order in (2, 4, 6, 8):
        assert np.allclose(taylor_weights(order)[1], LAPLACIAN_WEIGHTS[order][1], rtol=1e-12)
    # The optimised order 10 is accurate (1e-3) up to k h = 2.2, Taylor order 4 to 0.66.
    assert accurate_band(10, 'optimised') > 2.2 > accurate_band(10, 'taylor')
    assert 0.6 < accurate_band(4) < 0.7
    assert abs(phase_velocity_error(2.0, 10, 'optimised')) < 1e-3
    assert abs(phase_velocity_error(2.0, 10, 'optimised', np.pi / 4)) < 1e-3
    assert cfl_limit(1.0, (1.0, 1.0), 10, 'optimised') == pytest.approx(0.512, abs=1e-3)
    model = SoundSpeedModel(np.full((40, 40), 1460.0, np.float32), (5e-4, 5e-4))
    points, needed, message = dispersion_check(model, 5e5, 10, 'optimised')
    assert points == pytest.approx(5.84) and needed == pytest.approx(5.68, abs=0.01)
    assert message is None
    with warnings.catch_warnings():
        warnings.simplefilter('error', DispersionWarning)
        build_config(model, shots=1, transducers=8)
    with pytest.warns(DispersionWarning, match=r'4\.17 cells per wavelength.*phase error'):
        build_config(model, shots=1, transducers=8, frequency=7e5)
    with pytest.warns(DispersionWarning, match='taylor order-4'):
        build_config(model, shots=1, transducers=8, space_order=4)


def test_cli_prints_the_dispersion_warning_once(tmp_path):
    script = os.path.join(EXAMPLES, 'ultrasound_forward_2d.py')
    env = {k: v for k, v in os.environ.items() if k not in ('PMI_RANK', 'OMPI_COMM_WORLD_RANK',
                                                             'SLURM_PROCID')}
    for rank, count in ((None, 1), ('1', 0)):
        if rank is not None:
            env['PMI_RANK'] = rank
        result = subprocess.run([sys.executable, script, '--serial', '--shots', '1', '--steps',
                                 '10', '--transducers', '8', '--frequency', '7e5', '--output',
                                 str(tmp_path)], env=env,
                                capture_output=True, text=True, timeout=120,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        assert result.stderr.count('warning: 700 kHz') == count, result.stderr
        assert 'expected phase error' in result.stderr or count == 0
