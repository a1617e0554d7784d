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
