"""Source wavelets sampled on the solver's time axis ``t_n = n dt``."""

from __future__ import annotations

import numpy as np

__all__ = ['WAVELETS', 'ricker', 'tone_burst', 'make_wavelet']


def _check(frequency: float, dt: float, num_steps: int) -> None:
    if not (np.isfinite(frequency) and frequency > 0):
        raise ValueError(f'frequency must be finite and > 0 Hz; got {frequency}')
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f'time step must be finite and > 0 s; got {dt}')
    if int(num_steps) < 1:
        raise ValueError(f'number of time steps must be >= 1; got {num_steps}')


def ricker(frequency: float, dt: float, num_steps: int, delay: float = None) -> np.ndarray:
    """Ricker wavelet (the negative, normalised second derivative of a Gaussian).

    ``w(t) = (1 - 2 pi^2 f^2 tau^2) exp(-pi^2 f^2 tau^2)``, ``tau = t - delay``,
    from Ricker, N. (1953), "The form and laws of propagation of seismic wavelets",
    Geophysics 18(1), 10-40. Its spectrum peaks at ``f``. The default delay ``1.5 / f``
    makes the wavelet start at ``|w| < 1e-7``, i.e. causal to float32 precision.

    Parameters
    ----------
    frequency : float
        Peak (centre) frequency ``f`` in Hz.
    dt : float
        Time step in s.
    num_steps : int
        Number of samples.
    delay : float, optional
        Time of the peak in s; default ``1.5 / frequency``.

    Returns
    -------
    np.ndarray
        float32, shape ``(num_steps,)``, dimensionless, peak value 1 at ``t = delay``.

    Raises
    ------
    ValueError
        If ``frequency``, ``dt`` or ``num_steps`` is not positive.
    """
    _check(frequency, dt, num_steps)
    delay = 1.5 / frequency if delay is None else float(delay)
    tau = np.arange(int(num_steps)) * dt - delay
    arg = (np.pi * frequency * tau) ** 2
    return ((1.0 - 2.0 * arg) * np.exp(-arg)).astype(np.float32)


def tone_burst(frequency: float, dt: float, num_steps: int, cycles: int = 3) -> np.ndarray:
    """Hann-windowed tone burst, the usual pulse of ultrasound transducer simulations.

    ``w(t) = sin(2 pi f t) * 0.5 (1 - cos(2 pi t / T))`` for ``0 <= t <= T = cycles / f``,
    0 afterwards (Hann window: Blackman & Tukey (1958), "The measurement of power spectra",
    as catalogued by Harris, F. J. (1978), Proc. IEEE 66(1), 51-83).

    Parameters
    ----------
    frequency : float
        Carrier frequency ``f`` in Hz.
    dt : float
        Time step in s.
    num_steps : int
        Number of samples.
    cycles : int
        Number of carrier cycles under the window, >= 1.

    Returns
    -------
    np.ndarray
        float32, shape ``(num_steps,)``, dimensionless, amplitude <= 1.

    Raises
    ------
    ValueError
        If ``frequency``, ``dt``, ``num_steps`` or ``cycles`` is not positive.
    """
    _check(frequency, dt, num_steps)
    if int(cycles) < 1:
        raise ValueError(f'cycles must be >= 1; got {cycles}')
    t = np.arange(int(num_steps)) * dt
    duration = int(cycles) / frequency
    window = np.where(t <= duration, 0.5 * (1.0 - np.cos(2.0 * np.pi * t / duration)), 0.0)
    return (np.sin(2.0 * np.pi * frequency * t) * window).astype(np.float32)


#: Wavelet names accepted by :func:`make_wavelet` (and the CLI's ``--wavelet``).
WAVELETS = {'ricker': ricker, 'toneburst': tone_burst}


def make_wavelet(kind: str, frequency: float, dt: float, num_steps: int) -> np.ndarray:
    """Build a wavelet by name.

    Parameters
    ----------
    kind : {'ricker', 'toneburst'}
        Wavelet family (see :func:`ricker` and :func:`tone_burst`).
    frequency : float
        Centre frequency in Hz.
    dt : float
        Time step in s.
    num_steps : int
        Number of samples.

    Returns
    -------
    np.ndarray
        float32, shape ``(num_steps,)``.

    Raises
    ------
    ValueError
        If ``kind`` is unknown or a parameter is not positive.
    """
    try:
        function = WAVELETS[kind]
    except KeyError:
        raise ValueError(f'unknown wavelet {kind!r}; choose one of {sorted(WAVELETS)}') from None
    return function(frequency, dt, num_steps)
