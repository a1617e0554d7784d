"""The examples written as Mosaic users write them run, with the values they should print."""

import re

import numpy as np
import pytest

from conftest import ROOT, run_mpi


def expected_misfit(iteration, num_shots=8, num_receivers=16):
    wavelet = np.sin(np.linspace(0, np.pi, 64))
    model = np.linspace(1.0, 2.0, 32) * (1 + iteration)
    total = 0.0
    for shot in range(num_shots):
        distance = np.abs(np.arange(num_receivers) - shot % num_receivers)
        total += 0.5 * np.sum(np.outer(model[distance % model.size], wavelet) ** 2)
    return total


@pytest.mark.parametrize('n', [2, 3])
def test_stride_style_shot_loop(n):
    result = run_mpi([ROOT / 'examples' / 'shot_loop.py'], n=n)
    assert result.returncode == 0, result.stdout + result.stderr
    for iteration in range(2):
        assert (f'iteration {iteration}: total misfit {expected_misfit(iteration):.3f} over 8 '
                f'shots') in result.stdout, result.stdout
    done = re.search(r'shots per worker: \[([\d, ]+)\]', result.stdout)
    counts = [int(c) for c in done.group(1).split(',')]
    assert len(counts) == n - 1 and sum(counts) == 16


def _allreduce_example():
    import importlib.util
    import sys
    sys.path.insert(0, str(ROOT / 'examples'))
    spec = importlib.util.spec_from_file_location('allreduce_gradient',
                                                  ROOT / 'examples' / 'allreduce_gradient.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('n', [3, 4])
def test_allreduce_gradient_sums_the_members_gradients(n, tmp_path):
    output = tmp_path / 'gradient.npy'
    result = run_mpi([ROOT / 'examples' / 'allreduce_gradient.py', '--shots', '6',
                      '--output', output], n=n, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    members = n - 1
    assert f'{members} members on ranks {list(range(1, n))}, 6 shots' in result.stdout
    assert 'members agree: True' in result.stdout, result.stdout
    allreduced = np.load(output)
    # The same members' gradients, computed here one after the other, and summed.
    example = _allreduce_example()
    parts = [example.WaveletShots(6, members, i) for i in range(members)]
    outcomes = [part.misfit_and_gradient() for part in parts]
    serial = sum(gradient for _, gradient in outcomes)
    assert allreduced.shape == serial.shape == (parts[0].num_steps,)
    np.testing.assert_allclose(allreduced, serial, rtol=1e-12, atol=1e-12 * np.abs(serial).max())
    misfits = [float(m) for m in re.findall(r'iteration \d: misfit ([\d.e+-]+)', result.stdout)]
    assert len(misfits) == 3 and misfits[0] == pytest.approx(sum(m for m, _ in outcomes),
                                                             rel=1e-6)
    assert misfits[0] > misfits[1] > misfits[2], misfits
    # The gradient is the misfit's: J is quadratic in the wavelet, so a central difference
    # along any direction equals the directional derivative (up to rounding).
    part = parts[0]
    direction = np.random.default_rng(0).standard_normal(part.num_steps)
    start, epsilon = part.wavelet.copy(), 1e-3
    part.wavelet = start + epsilon * direction
    plus = part.misfit_and_gradient()[0]
    part.wavelet = start - epsilon * direction
    minus = part.misfit_and_gradient()[0]
    assert (plus - minus) / (2 * epsilon) == pytest.approx(float(outcomes[0][1] @ direction),
                                                          rel=1e-6)
