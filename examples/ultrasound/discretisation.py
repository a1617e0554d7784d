"""Discretisation constants of the solver: stencils, time-step limit, absorbing profile."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

__all__ = ['CFL_SAFETY', 'LAPLACIAN_WEIGHTS', 'cfl_limit', 'stable_time_step',
           'damping_profile']

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
#: accepted for a time step given by a model file. 0.8 leaves room for round-off and keeps
#: the numerical dispersion of the leapfrog scheme small.
CFL_SAFETY = 0.8


def cfl_limit(max_speed: float, spacing: Sequence[float], space_order: int = 4) -> float:
    """Largest stable time step of the leapfrog scheme (von Neumann analysis).

    Leapfrog in time with a centred Laplacian of weights ``w_k / h_i^2`` is stable when
    ``c_max^2 dt^2 sum_i (sum_k |w_k|) / h_i^2 <= 4``, so
    ``dt_max = 2 / (c_max sqrt(sum_i (sum_k |w_k|) / h_i^2))``
    (Lines, Slawinski & Bording (1999), "A recipe for stability of finite-difference
    wave-equation computations", Geophysics 64(3), 967-969). With equal spacing ``h`` this
    is ``h / (sqrt(2) c_max)`` for order 2, ``sqrt(3/8) h / c_max`` for order 4 and
    about ``0.555 h / c_max`` for order 8.
    The damping term does not lower the limit (its centred form only adds dissipation).

    Parameters
    ----------
    max_speed : float
        Largest sound speed in m/s.
    spacing : sequence of float
        Grid spacing per axis in metres.
    space_order : {2, 4, 6, 8}
        Order of the Laplacian.

    Returns
    -------
    float
        The limit ``dt_max`` in seconds.

    Raises
    ------
    ValueError
        If ``space_order`` is not supported or a parameter is not positive.
    """
    if space_order not in LAPLACIAN_WEIGHTS:
        raise ValueError(f'space order must be one of {sorted(LAPLACIAN_WEIGHTS)}; '
                         f'got {space_order}')
    if not (math.isfinite(max_speed) and max_speed > 0):
        raise ValueError(f'max speed must be finite and > 0 m/s; got {max_speed}')
    if any(not (math.isfinite(h) and h > 0) for h in spacing):
        raise ValueError(f'spacing must be finite and > 0 m; got {list(spacing)}')
    w0, weights = LAPLACIAN_WEIGHTS[space_order]
    stencil_sum = abs(w0) + 2.0 * sum(abs(w) for w in weights)
    return 2.0 / (max_speed * math.sqrt(sum(stencil_sum / h ** 2 for h in spacing)))


def stable_time_step(max_speed: float, spacing: Sequence[float], space_order: int = 4,
                     safety: float = CFL_SAFETY) -> float:
    """Default time step: ``safety * cfl_limit(max_speed, spacing, space_order)``.

    Parameters
    ----------
    max_speed : float
        Largest sound speed in m/s.
    spacing : sequence of float
        Grid spacing per axis in metres.
    space_order : {2, 4, 6, 8}
        Order of the Laplacian.
    safety : float
        Fraction of the limit, in ``(0, 1]``; default :data:`CFL_SAFETY`.

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
    return safety * cfl_limit(max_speed, spacing, space_order)


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
