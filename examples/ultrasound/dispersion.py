"""Removal of the leapfrog scheme's time dispersion (forward and inverse transforms).

The leapfrog update ``(p[n+1] - 2 p[n] + p[n-1]) / dt^2`` acts on ``exp(i omega t)`` as
``-(2 sin(omega dt / 2) / dt)^2``: the time-stepped solution at frequency ``omega`` is the
exact-in-time solution at ``Omega(omega) = (2 / dt) sin(omega dt / 2)``, whatever the medium
and the spatial stencil. The error therefore does not depend on the model and is removed
exactly (for the wave equation without damping) by two resamplings of the spectrum
(Koene, E. F. M., Robertsson, J. O. A., Broggini, F. & Andersson, F. (2018), "Eliminating
time dispersion from seismic wave modeling", Geophys. J. Int. 213(1), 169-180):

- the forward transform (FTDT) of the source: ``S'(omega) = S(Omega(omega))``;
- the inverse transform (ITDT) of the recorded traces:
  ``U(Omega) = U_num(omega(Omega))``, ``omega(Omega) = (2 / dt) arcsin(Omega dt / 2)``.

Both are written here as non-uniform discrete Fourier sums evaluated on the uniform grid of a
zero-padded FFT (padding: :data:`PADDING` of the record), so that energy moved in time does
not wrap around. Only frequencies where the source has energy (above :data:`SPECTRUM_FLOOR`
of its peak) are carried: the traces are band-limited to the source's band.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ['PADDING', 'SPECTRUM_FLOOR', 'TimeDispersionCorrection']

#: Zero padding of the record, as a fraction of its length, for the transforms.
PADDING = 0.25

#: Source spectrum level (relative to its peak) below which frequencies are dropped.
SPECTRUM_FLOOR = 1e-6


class TimeDispersionCorrection:
    """The FTDT of one source wavelet and the matching ITDT of traces, for one time axis.

    Parameters
    ----------
    dt : float
        Time step of the scheme, s.
    num_steps : int
        Samples per trace (``t_n = n dt``).
    wavelet : np.ndarray
        Source time function, shape ``(num_steps,)``.

    Attributes
    ----------
    wavelet : np.ndarray
        float32, shape ``(num_steps,)``: the transformed source to inject.
    band : float
        Highest frequency kept, Hz.

    Raises
    ------
    ValueError
        If the wavelet has the wrong shape, is zero, or ``dt`` is not positive.
    """

    def __init__(self, dt: float, num_steps: int, wavelet):
        self.dt, self.num_steps = float(dt), int(num_steps)
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f'time step must be finite and > 0 s; got {dt}')
        source = np.asarray(wavelet, dtype=np.float64)
        if source.shape != (self.num_steps,):
            raise ValueError(f'wavelet must have shape ({self.num_steps},); got {source.shape}')
        self.length = self.num_steps + int(math.ceil(PADDING * self.num_steps))
        t = np.arange(self.num_steps) * self.dt
        # Uniform grid of the padded FFT; its image under Omega(omega) <= omega.
        omega = 2.0 * np.pi * np.fft.rfftfreq(self.length, self.dt)
        stretched = (2.0 / self.dt) * np.sin(0.5 * omega * self.dt)
        spectrum = np.exp(-1j * np.outer(stretched, t)) @ source
        if not np.any(spectrum):
            raise ValueError('the wavelet is zero')
        self.wavelet = np.fft.irfft(spectrum, self.length)[:self.num_steps].astype(np.float32)
        # ITDT: the exact frequencies Omega_k that the source carries and are < 2 / dt, and
        # the scheme's frequencies omega(Omega_k) where the numerical spectrum is read.
        plain = np.abs(np.fft.rfft(source, self.length))
        keep = np.nonzero((plain >= SPECTRUM_FLOOR * plain.max()) & (omega * self.dt < 2.0))[0]
        self.num_frequencies = int(keep[-1]) + 1 if keep.size else 1
        exact = omega[:self.num_frequencies]
        self.band = float(exact[-1] / (2.0 * np.pi))
        scheme = (2.0 / self.dt) * np.arcsin(0.5 * exact * self.dt)
        phase = np.outer(t, scheme)
        # Real form of the non-uniform DFT, float32 like the traces: U = u @ (cos - i sin).
        self._cos = np.cos(phase).astype(np.float32)
        self._sin = np.sin(phase).astype(np.float32)

    def traces(self, traces: np.ndarray) -> np.ndarray:
        """Apply the ITDT to traces computed with :attr:`wavelet` as the source.

        Parameters
        ----------
        traces : np.ndarray
            float32, shape ``(num_receivers, num_steps)``: the time-stepped pressure.

        Returns
        -------
        np.ndarray
            float32, same shape: the traces with the time dispersion removed.
        """
        real = traces @ self._cos
        imag = traces @ self._sin
        spectrum = np.zeros((traces.shape[0], self.length // 2 + 1), np.complex128)
        spectrum[:, :self.num_frequencies] = real - 1j * imag
        corrected = np.fft.irfft(spectrum, self.length, axis=1)[:, :self.num_steps]
        return np.ascontiguousarray(corrected, dtype=np.float32)
