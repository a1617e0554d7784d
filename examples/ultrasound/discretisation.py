"""Discretisation constants of the solver: stencils, time-step limit, absorbing profile."""

from __future__ import annotations

import functools
import math
from typing import Sequence, Tuple

import numpy as np

__all__ = ['BAND_TOLERANCE', 'CFL_SAFETY', 'LAPLACIAN_WEIGHTS', 'OPTIMISED_BANDS', 'SPACE_ORDERS',
           'STENCILS', 'accurate_band', 'cfl_limit', 'damping_profile', 'laplacian_weights',
           'optimised_weights', 'phase_velocity_error', 'stable_time_step', 'taylor_weights']

#: Centred second-derivative weights ``(w0, (w1, w2, ...))`` (times ``1 / h^2``) per order:
#: the standard Taylor-series stencils, tabulated in Fornberg, B. (1988), "Generation of
#: finite difference formulas on arbitrarily spaced grids", Math. Comp. 51(184), 699-706.
LAPLACIAN_WEIGHTS = {
    2: (-2.0, (1.0,)),
    4: (-5.0 / 2.0, (4.0 / 3.0, -1.0 / 12.0)),
    6: (-49.0 / 18.0, (3.0 / 2.0, -3.0 / 20.0, 1.0 / 90.0)),
    8: (-205.0 / 72.0, (8.0 / 5.0, -1.0 / 5.0, 8.0 / 315.0, -1.0 / 560.0)),
}

#: Fraction of the stability limit used for the default time step, and the largest fraction
#: accepted for a time step given by a model file. The time dispersion is removed
#: (:mod:`.dispersion`), so the step need not be small for accuracy; 0.9 leaves room for
#: round-off and the PML's terms (the solver stays stable up to 0.99 over 6000 steps, mostly
#: in the PML: tests/test_ultrasound_validation.py runs 0.9).
CFL_SAFETY = 0.9

#: Stencil families accepted by :func:`laplacian_weights` (and the CLI's ``--stencil``).
STENCILS = ('taylor', 'optimised')

#: Space orders accepted (the stencil spans ``order + 1`` points per axis).
SPACE_ORDERS = (2, 4, 6, 8, 10, 12)

#: Fitting band ``b`` (in ``k h``) of the optimised stencils, per order: the widest band over
#: which the least-squares fit keeps the phase-velocity error below about 1e-3 (measured with
#: :func:`phase_velocity_error`: 5e-4 for order 8, 8e-4 for 10, 9e-4 for 12).
OPTIMISED_BANDS = {8: 1.8, 10: 2.2, 12: 2.4}

#: Phase-velocity error that defines a stencil's accurate band (see :func:`accurate_band`).
BAND_TOLERANCE = 1e-3


def taylor_weights(space_order: int):
    """Taylor-series weights of the centred second derivative of any even order.

    ``w_m = 2 (-1)^(m+1) (M!)^2 / (m^2 (M - m)! (M + m)!)`` for ``m = 1 .. M``,
    ``M = space_order / 2``, and ``w_0 = -2 sum_m w_m`` (Fornberg 1988); for orders 2-8 these
    are the values of :data:`LAPLACIAN_WEIGHTS`.

    Parameters
    ----------
    space_order : int
        Even order ``2 M >= 2``.

    Returns
    -------
    tuple
        ``(w0, (w1, ..., wM))``, floats, times ``1 / h^2``.

    Raises
    ------
    ValueError
        If ``space_order`` is not a positive even integer.
    """
    if space_order < 2 or space_order % 2:
        raise ValueError(f'space order must be a positive even integer; got {space_order}')
    half = space_order // 2
    weights = [2.0 * (-1) ** (m + 1) * math.factorial(half) ** 2
               / (m ** 2 * math.factorial(half - m) * math.factorial(half + m))
               for m in range(1, half + 1)]
    return -2.0 * sum(weights), tuple(weights)


@functools.lru_cache(maxsize=None)
def optimised_weights(space_order: int, band: float = None):
    """Least-squares optimised weights of the centred second derivative.

    The weights minimise the relative error of the stencil's symbol over ``0 < k h <= b``,
    ``integral (sum_m w_m 2 (1 - cos(m k h)) / (k h)^2 - 1)^2 d(kh)``, with
    ``w_0 = -2 sum_m w_m`` (exact for constants), as in Liu, Y. (2013), "Globally optimal
    finite-difference schemes based on least squares", Geophysics 78(4), T113-T132. They trade
    the Taylor stencil's formal order for accuracy up to ``k h = b`` (about ``2 pi / b`` grid
    points per wavelength), which is what long propagation distances need.

    Parameters
    ----------
    space_order : {8, 10, 12}
        Stencil width ``2 M`` (``M`` neighbours per side).
    band : float, optional
        ``b`` in radians; default :data:`OPTIMISED_BANDS` ``[space_order]``.

    Returns
    -------
    tuple
        ``(w0, (w1, ..., wM))``, floats, times ``1 / h^2``.

    Raises
    ------
    ValueError
        If ``space_order`` has no optimised stencil, or ``band`` is not in ``(0, pi)``.
    """
    if space_order not in OPTIMISED_BANDS:
        raise ValueError(f'optimised stencils exist for space orders {sorted(OPTIMISED_BANDS)}; '
                         f'got {space_order}')
    band = OPTIMISED_BANDS[space_order] if band is None else float(band)
    if not 0 < band < math.pi:
        raise ValueError(f'band must be in (0, pi); got {band}')
    x = np.linspace(band / 1000, band, 1000)
    m = np.arange(1, space_order // 2 + 1)
    design = 2.0 * (1.0 - np.cos(np.outer(x, m))) / x[:, None] ** 2
    weights = np.linalg.lstsq(design, np.ones_like(x), rcond=None)[0]
    return -2.0 * float(weights.sum()), tuple(float(w) for w in weights)


def laplacian_weights(space_order: int = 4, stencil: str = 'taylor'):
    """Weights of the centred second derivative for a stencil family and order.

    Parameters
    ----------
    space_order : {2, 4, 6, 8, 10, 12}
        Stencil width (``space_order / 2`` neighbours per side).
    stencil : {'taylor', 'optimised'}
        :func:`taylor_weights` or :func:`optimised_weights` (orders 8-12 only).

    Returns
    -------
    tuple
        ``(w0, (w1, ..., wM))``, times ``1 / h^2``.

    Raises
    ------
    ValueError
        If the family or the order is not supported.
    """
    if stencil not in STENCILS:
        raise ValueError(f'stencil must be one of {list(STENCILS)}; got {stencil!r}')
    if space_order not in SPACE_ORDERS:
        raise ValueError(f'space order must be one of {list(SPACE_ORDERS)}; got {space_order}')
    if stencil == 'optimised':
        return optimised_weights(space_order)
    return LAPLACIAN_WEIGHTS.get(space_order) or taylor_weights(space_order)


def phase_velocity_error(kh, space_order: int = 4, stencil: str = 'taylor', angle: float = 0.0):
    """Relative phase-velocity error of the semi-discrete scheme (exact in time).

    A plane wave ``exp(i (k . x - omega t))`` on the grid obeys
    ``sum_axes S(k_i h) / h^2 = omega^2 / c^2``, with the stencil's symbol
    ``S(x) = -(w_0 + 2 sum_m w_m cos(m x))``; the numerical phase velocity is
    ``omega / k``. This is the error left once the time dispersion is removed
    (:mod:`.dispersion`). Equal spacing on both axes is assumed.

    Parameters
    ----------
    kh : float or np.ndarray
        Wavenumber times spacing, radians, in ``(0, pi]``.
    space_order, stencil
        As in :func:`laplacian_weights`.
    angle : float
        Propagation direction from the x axis, radians (0: along an axis, the worst case
        for these stencils; pi/4: diagonal).

    Returns
    -------
    np.ndarray
        ``c_numerical / c - 1`` (negative: the grid is slow), same shape as ``kh``.
    """
    w0, weights = laplacian_weights(space_order, stencil)
    m = np.arange(1, len(weights) + 1)
    kh = np.asarray(kh, dtype=float)

    def symbol(x):
        return -(w0 + 2.0 * np.cos(np.multiply.outer(x, m)) @ np.asarray(weights))

    total = symbol(kh * math.cos(angle)) + symbol(kh * math.sin(angle))
    return np.sqrt(np.maximum(total, 0.0)) / kh - 1.0


def accurate_band(space_order: int = 4, stencil: str = 'taylor',
                  tolerance: float = BAND_TOLERANCE) -> float:
    """Largest ``k h`` up to which the phase-velocity error stays within ``tolerance``.

    Parameters
    ----------
    space_order, stencil
        As in :func:`laplacian_weights`.
    tolerance : float
        Largest accepted ``|c_numerical / c - 1|`` along an axis.

    Returns
    -------
    float
        ``k h`` in radians; the stencil resolves wavelengths of ``2 pi / (k h)`` cells or more.
    """
    kh = np.linspace(1e-3, math.pi, 4000)
    bad = np.abs(phase_velocity_error(kh, space_order, stencil)) > tolerance
    return float(kh[np.argmax(bad)] if bad.any() else math.pi)


def cfl_limit(max_speed: float, spacing: Sequence[float], space_order: int = 4,
              stencil: str = 'taylor') -> float:
    """Largest stable time step of the leapfrog scheme (von Neumann analysis).

    Leapfrog in time with a centred Laplacian of weights ``w_k / h_i^2`` is stable when
    ``c_max^2 dt^2 sum_i (sum_k |w_k|) / h_i^2 <= 4``, so
    ``dt_max = 2 / (c_max sqrt(sum_i (sum_k |w_k|) / h_i^2))``
    (Lines, Slawinski & Bording (1999), "A recipe for stability of finite-difference
    wave-equation computations", Geophysics 64(3), 967-969). With equal spacing ``h`` this
    is ``h / (sqrt(2) c_max)`` for order 2, ``sqrt(3/8) h / c_max`` for order 4,
    about ``0.555 h / c_max`` for order 8 and ``0.512 h / c_max`` for the optimised order 10.
    The damping term does not lower the limit (its centred form only adds dissipation).

    Parameters
    ----------
    max_speed : float
        Largest sound speed in m/s.
    spacing : sequence of float
        Grid spacing per axis in metres.
    space_order : {2, 4, 6, 8, 10, 12}
        Order of the Laplacian.
    stencil : {'taylor', 'optimised'}
        Stencil family (:func:`laplacian_weights`).

    Returns
    -------
    float
        The limit ``dt_max`` in seconds.

    Raises
    ------
    ValueError
        If ``space_order`` or ``stencil`` is not supported or a parameter is not positive.
    """
    w0, weights = laplacian_weights(space_order, stencil)
    if not (math.isfinite(max_speed) and max_speed > 0):
        raise ValueError(f'max speed must be finite and > 0 m/s; got {max_speed}')
    if any(not (math.isfinite(h) and h > 0) for h in spacing):
        raise ValueError(f'spacing must be finite and > 0 m; got {list(spacing)}')
    stencil_sum = abs(w0) + 2.0 * sum(abs(w) for w in weights)
    return 2.0 / (max_speed * math.sqrt(sum(stencil_sum / h ** 2 for h in spacing)))


def stable_time_step(max_speed: float, spacing: Sequence[float], space_order: int = 4,
                     safety: float = CFL_SAFETY, stencil: str = 'taylor') -> float:
    """Default time step: ``safety * cfl_limit(max_speed, spacing, space_order, stencil)``.

    Parameters
    ----------
    max_speed : float
        Largest sound speed in m/s.
    spacing : sequence of float
        Grid spacing per axis in metres.
    space_order : {2, 4, 6, 8, 10, 12}
        Order of the Laplacian.
    safety : float
        Fraction of the limit, in ``(0, 1]``; default :data:`CFL_SAFETY`.
    stencil : {'taylor', 'optimised'}
        Stencil family (:func:`laplacian_weights`).

    Returns
    -------
    float
        Time step in seconds.

    Raises
    ------
    ValueError
        If ``safety`` is outside ``(0, 1]`` or :func:`cfl_limit` rejects the inputs.
    """
    if not 0 < safety <= 1:
        raise ValueError(f'safety factor must be in (0, 1]; got {safety}')
    return safety * cfl_limit(max_speed, spacing, space_order, stencil)


def damping_profile(shape: Tuple[int, int], absorbing: int, spacing: Sequence[float],
                    max_speed: float, reflection: float = 1e-3) -> np.ndarray:
    """Damping coefficient ``eta`` of the sponge around the model.

    Per axis, ``eta_i(d) = eta_max,i (d / A)^2`` at depth ``d`` cells into the layer of
    ``A = absorbing`` cells (the quadratic profile of Collino & Tsogka (2001), Geophysics
    66(1), 294-307); the axes add up in the corners. A weakly damped wave decays as
    ``exp(-eta t / 2)``, so a wave crossing the layer (thickness ``L = A h_i``) and back at
    speed ``c`` is reduced by ``exp(-eta_max L / (3 c))``; setting that to ``reflection``
    gives ``eta_max,i = 3 c_max ln(1 / reflection) / L``.

    Parameters
    ----------
    shape : tuple of int
        Shape ``(nx, ny)`` of the padded grid (model plus ``absorbing`` cells per side).
    absorbing : int
        Layer width in cells, >= 0 (0 gives no damping).
    spacing : sequence of float
        Grid spacing per axis in metres.
    max_speed : float
        Sound speed in m/s used to scale the profile (the model's largest).
    reflection : float
        Target round-trip amplitude reduction at normal incidence, in ``(0, 1)``.

    Returns
    -------
    np.ndarray
        float64, shape ``shape``, in 1/s; 0 inside the model.

    Raises
    ------
    ValueError
        If ``absorbing`` is negative or too wide for ``shape``, or ``reflection`` is not
        in ``(0, 1)``.
    """
    if absorbing < 0 or 2 * absorbing >= min(shape):
        raise ValueError(f'absorbing width {absorbing} cells does not fit grid {tuple(shape)}')
    if not 0 < reflection < 1:
        raise ValueError(f'reflection must be in (0, 1); got {reflection}')
    eta = np.zeros(shape)
    if absorbing == 0:
        return eta
    for axis, (n, h) in enumerate(zip(shape, spacing)):
        index = np.arange(n)
        depth = np.maximum(np.maximum(absorbing - index, index - (n - 1 - absorbing)), 0)
        eta_max = 3.0 * max_speed * math.log(1.0 / reflection) / (absorbing * h)
        profile = eta_max * (depth / absorbing) ** 2
        eta += profile[:, None] if axis == 0 else profile[None, :]
    return eta
