#!/usr/bin/env python
"""Estimate the source wavelet of the ultrasound job, the gradients summed by MPI_Allreduce.

A collective tessera array (``len=N, collective=True``) holds one member per worker; member
``i`` computes shots ``i, i + N, ...`` of the job's solver (:mod:`ultrasound.solver`, a small
phantom grid so that it runs in seconds). Each iteration, every member computes the gradient of
the least-squares misfit on its shots and the members sum their gradients with
``mosaic.comm().Allreduce``: the per-member gradients never pass through the head, and every
member ends up with the total, so all take the same descent step on their own copy of the
wavelet. The head only starts the iterations and reads the misfit.

What is computed. The traces of a shot are linear and time-invariant in the source wavelet
``w`` (the solver's coefficients do not change in time; the leapfrog time-dispersion correction
is turned off here, as it is not time-invariant), so ``F_s w = g_s * w``: a causal convolution
with the shot's impulse response ``g_s`` (the traces of a unit impulse at step 0, one forward run
per shot). The misfit against observed traces ``d_s`` (the true Ricker wavelet fired through the
same phantom) is ``J(w) = 1/2 sum_s ||F_s w - d_s||^2`` and its gradient the adjoint applied to
the residual, a cross-correlation::

    grad J(w)[m] = sum_s sum_r sum_n g_s[r, n - m] (F_s w - d_s)[r, n]

which is exact: the adjoint-state method of a linear, time-invariant forward map (see Tarantola,
*Inverse Problem Theory*, 2005, ch. 6). The descent step along ``-grad J`` is the exact line
search of this quadratic, ``alpha = ||grad J||^2 / sum_s ||F_s grad J||^2``, its two sums also
allreduced. Source-wavelet estimation is what Stride runs before inverting for the model.

Run it (one member per worker)::

    mpiexec -n 3 python examples/allreduce_gradient.py [--iterations 3] [--shots 6] [--output g.npy]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mosaic_mpi as mosaic  # noqa: E402
from ultrasound.job import build_config  # noqa: E402
from ultrasound.model import make_phantom  # noqa: E402
from ultrasound.solver import AcousticSolver2D  # noqa: E402
from ultrasound.wavelets import make_wavelet  # noqa: E402

#: The small job: a 96 x 104 phantom at 1 mm, 32 transducers, a 250 kHz Ricker wavelet.
GRID = dict(shape=(96, 104), spacing=(1.0e-3, 1.0e-3))
JOB = dict(transducers=32, frequency=250e3, absorbing=20)
#: The starting guess: a Ricker wavelet of 0.8 times the true centre frequency.
GUESS_FACTOR = 0.8


def make_config(shots):
    """The job's configuration (identical on every rank)."""
    return build_config(make_phantom(**GRID), shots=shots, **JOB)


class WaveletShots:
    """The shots of one member: their impulse responses and observed traces.

    Parameters
    ----------
    shots : int
        Number of shots of the whole job.
    members : int
        Number of members sharing them.
    index : int
        This member's index: it takes shots ``index, index + members, ...``.
    """

    def __init__(self, shots, members, index):
        config = make_config(shots)
        arguments = config.solver_arguments()
        true_wavelet = arguments.pop('wavelet')
        solver = AcousticSolver2D(arguments['model'], arguments['spacing'], arguments['dt'],
                                  arguments['num_steps'], arguments['transducers'],
                                  absorbing=arguments['absorbing'],
                                  space_order=arguments['space_order'],
                                  stencil=arguments['stencil'], time_correction=False)
        self.num_steps = config.num_steps
        impulse = np.zeros(self.num_steps, np.float32)
        impulse[0] = 1.0
        self.sources = [int(s) for s in config.source_indices[index::members]]
        self.responses = [solver.run_shot(s, impulse).astype(np.float64) for s in self.sources]
        self.observed = [solver.run_shot(s, true_wavelet).astype(np.float64)
                         for s in self.sources]
        self.wavelet = make_wavelet(config.wavelet_kind, GUESS_FACTOR * config.frequency,
                                    config.dt, self.num_steps).astype(np.float64)
        self._fft = 2 * self.num_steps
        self._spectra = [np.fft.rfft(g, self._fft) for g in self.responses]

    def forward(self, wavelet):
        """``F_s w`` for every shot here: the impulse responses convolved with ``wavelet``."""
        spectrum = np.fft.rfft(wavelet, self._fft)
        return [np.fft.irfft(G * spectrum, self._fft)[:, :self.num_steps]
                for G in self._spectra]

    def misfit_and_gradient(self):
        """The misfit on these shots and its gradient with respect to the wavelet.

        Returns
        -------
        misfit : float
            ``1/2 sum_s ||F_s w - d_s||^2`` over these shots.
        gradient : np.ndarray
            float64, shape ``(num_steps,)``.
        """
        misfit, gradient = 0.0, np.zeros(self.num_steps)
        for G, predicted, observed in zip(self._spectra, self.forward(self.wavelet),
                                          self.observed):
            residual = predicted - observed
            misfit += 0.5 * float(np.sum(residual ** 2))
            correlation = np.fft.irfft(np.conj(G) * np.fft.rfft(residual, self._fft),
                                       self._fft)
            gradient += correlation[:, :self.num_steps].sum(axis=0)
        return misfit, gradient

    def curvature(self, direction):
        """``sum_s ||F_s direction||^2`` over these shots."""
        return float(sum(np.sum(f ** 2) for f in self.forward(direction)))


@mosaic.tessera
class WaveletEstimator:
    """A member of the collective array: its shots and its copy of the wavelet estimate."""

    def __init__(self, shots):
        comm = mosaic.comm()
        self.shots = WaveletShots(shots, comm.Get_size(), comm.Get_rank())

    def gradient(self):
        """The misfit and gradient of the whole job: this member's, summed over the members.

        Returns
        -------
        misfit : float
        gradient : np.ndarray
            float64, shape ``(num_steps,)``, the same on every member.
        """
        comm = mosaic.comm()
        misfit, gradient = self.shots.misfit_and_gradient()
        total = np.empty_like(gradient)
        comm.Allreduce(gradient, total)              # member to member: never via the head
        return comm.allreduce(misfit), total

    def step(self):
        """One steepest-descent step with exact line search; returns the misfit before it."""
        comm = mosaic.comm()
        misfit, gradient = self.gradient()
        curvature = comm.allreduce(self.shots.curvature(gradient))
        alpha = float(gradient @ gradient) / curvature
        self.shots.wavelet = self.shots.wavelet - alpha * gradient
        return misfit

    @mosaic.local
    def local_gradient(self):
        """This member's own misfit and gradient, no collective (to check the sum)."""
        return self.shots.misfit_and_gradient()

    @mosaic.local
    def misfit(self):
        """The misfit of this member's shots with its current wavelet."""
        return self.shots.misfit_and_gradient()[0]


async def main(runtime, iterations, shots, output=None):
    members = runtime.num_workers
    estimators = WaveletEstimator.remote(shots, len=members, collective=True)
    await estimators
    print(f'{members} members on ranks {estimators.ranks}, {shots} shots')
    first = await estimators.gradient().result()
    misfit, gradient = first[0]
    print(f'gradient: {gradient.size} samples, norm {np.linalg.norm(gradient):.6e}')
    print(f'members agree: {all(np.array_equal(g, gradient) for _, g in first)}')
    if output:
        np.save(output, gradient)
    for iteration in range(iterations):
        before = (await estimators.step().result())[0]
        print(f'iteration {iteration}: misfit {before:.6e}')
    after = sum(await mosaic.gather([m.misfit().result() for m in estimators]))
    print(f'final misfit {after:.6e} ({after / misfit:.3e} of the first)')


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iterations', type=int, default=3)
    parser.add_argument('--shots', type=int, default=6)
    parser.add_argument('--output', help='save the first allreduced gradient here (.npy)')
    options = parser.parse_args()
    mosaic.run(lambda runtime: main(runtime, options.iterations, options.shots, options.output))
