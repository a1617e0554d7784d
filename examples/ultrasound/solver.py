"""Finite-difference solver of the 2D acoustic wave equation with an absorbing sponge.

Equation (pressure ``p``, sound speed ``c``, damping ``eta`` non-zero only in the sponge)::

    p_tt + eta p_t = c^2 (laplacian(p) + s(t) delta(x - x_s))

Discretisation: centred second-order differences in time (leapfrog), a centred Laplacian
of order 2 to 12 in space (Taylor or least-squares optimised weights), and a centred first
difference for ``p_t``::

    p[n+1] = (2 p[n] - (1 - eta dt/2) p[n-1] + c^2 dt^2 (L p[n] + s[n] / (dx dy))) / (1 + eta dt/2)

The model is padded by ``absorbing`` cells per side with its edge values; ``p = 0`` beyond.
By default the leapfrog's time dispersion is removed by transforming the source before and
the traces after the time stepping (:mod:`.dispersion`).
"""

from __future__ import annotations

import math

import numpy as np

from .discretisation import (CFL_SAFETY, LAPLACIAN_WEIGHTS, cfl_limit, damping_profile,
                             laplacian_weights, stable_time_step)
from .boundary import PML_REFLECTION, PerfectlyMatchedLayer, pml_profile
from .dispersion import TimeDispersionCorrection
from .model import validate_speeds

__all__ = ['CFL_SAFETY', 'LAPLACIAN_WEIGHTS', 'cfl_limit', 'stable_time_step',
           'damping_profile', 'AcousticSolver2D']


class AcousticSolver2D:
    """Time-domain acoustic solver for shots fired and recorded at point transducers.

    Parameters
    ----------
    model : np.ndarray
        Sound speed, shape ``(nx, ny)``, m/s (finite, > 0).
    spacing : sequence of float
        Grid spacing ``(dx, dy)`` in metres.
    dt : float
        Time step in s; must not exceed :func:`cfl_limit`.
    num_steps : int
        Number of time samples ``t_n = n dt``, ``n = 0 .. num_steps - 1``.
    transducers : np.ndarray or RingGeometry
        Integer cells ``(ix, iy)`` of the transducers, shape ``(num_transducers, 2)``, in
        the model grid (or an object with such a ``cells`` attribute).
    absorbing : int
        Width in cells of the absorbing layer added around the model (0: no layer,
        pressure-release walls ``p = 0`` just outside the model).
    space_order : {2, 4, 6, 8, 10, 12}
        Order of the Laplacian.
    reflection : float, optional
        Target reflection of the layer (:func:`~.boundary.pml_profile` or
        :func:`damping_profile`); default 1e-4 for the PML, 1e-3 for the sponge.
    boundary : {'pml', 'sponge'}
        A perfectly matched layer (:mod:`.boundary`) or the damping-only sponge
        ``eta p_t`` (:func:`damping_profile`).
    stencil : {'taylor', 'optimised'}
        Weights of the Laplacian (:func:`~.discretisation.laplacian_weights`).
    time_correction : bool
        Remove the leapfrog's time dispersion (:class:`~.dispersion.TimeDispersionCorrection`):
        the source is transformed before and the traces after the time stepping.

    Raises
    ------
    ValueError
        For an invalid model, time step, transducer cell, order or layer width.
    """

    def __init__(self, model, spacing, dt: float, num_steps: int, transducers,
                 absorbing: int = 40, space_order: int = 4, reflection: float = None,
                 stencil: str = 'taylor', time_correction: bool = True,
                 boundary: str = 'pml'):
        speeds = validate_speeds(model, 'model')
        self.spacing = tuple(float(h) for h in spacing)
        self.dt = float(dt)
        self.num_steps = int(num_steps)
        self.absorbing = int(absorbing)
        self.space_order = int(space_order)
        self.stencil = stencil
        self.time_correction = bool(time_correction)
        self._correction = None
        max_speed = float(speeds.max())
        limit = cfl_limit(max_speed, self.spacing, self.space_order, stencil)
        if not (math.isfinite(self.dt) and 0 < self.dt <= limit):
            raise ValueError(f'time step {dt} s is outside (0, {limit:.6g}] s, the stability '
                             f'limit for c_max = {max_speed} m/s and spacing {self.spacing} m')
        if self.num_steps < 1:
            raise ValueError(f'number of time steps must be >= 1; got {num_steps}')
        cells = np.asarray(getattr(transducers, 'cells', transducers), dtype=np.int64)
        if cells.ndim != 2 or cells.shape[1] != 2 or cells.shape[0] < 1:
            raise ValueError(f'transducer cells must have shape (n, 2); got {cells.shape}')
        if np.any(cells < 0) or np.any(cells >= np.asarray(speeds.shape)):
            raise ValueError(f'transducer cells must lie inside the model grid {speeds.shape}')
        self.cells = cells

        if boundary not in ('pml', 'sponge'):
            raise ValueError(f"boundary must be 'pml' or 'sponge'; got {boundary!r}")
        self.boundary = boundary
        a, halo = self.absorbing, self.space_order // 2
        padded = np.pad(speeds.astype(np.float64), a, mode='edge')
        self._pml, product = None, 0.0
        if boundary == 'pml' and a > 0:
            # The PML's damping terms of the p equation: (sigma_x + sigma_y) p_t and
            # sigma_x sigma_y p (centred at step n); its auxiliary fields live in self._pml.
            reflection = PML_REFLECTION if reflection is None else reflection
            sigma_x, sigma_y = (pml_profile(n, a, h, max_speed, reflection)
                                for n, h in zip(padded.shape, self.spacing))
            eta = sigma_x[:, None] + sigma_y[None, :]
            product = sigma_x[:, None] * sigma_y[None, :]
        else:
            eta = damping_profile(padded.shape, a, self.spacing, max_speed,
                                  1e-3 if reflection is None else reflection)
        denominator = 1.0 + 0.5 * eta * self.dt
        k = padded ** 2 * self.dt ** 2 / denominator
        if boundary == 'pml' and a > 0:
            self._pml = PerfectlyMatchedLayer(padded.shape, a, self.spacing, self.dt, max_speed,
                                              k, halo, reflection)
        # The fields have `halo` zero cells around the padded grid, and every array is used
        # flat: the update runs over whole rows of the field (halo columns included, where
        # all coefficients are 0 so the field stays 0), and every neighbour is then a
        # contiguous 1D slice, which numpy processes about 3x faster than 2D views.
        # The update, regrouped so that each array is read once per step (all float32):
        # p[n+1] = centre p[n] - b p[n-1] + k sum_g (w_g / h^2) (sum of the neighbours in
        # group g), where a group holds the neighbours that share a stencil weight w_g / h^2
        # (a scalar: only k is an array, which streams 4 fewer arrays per step at order 10).
        w0, weights = laplacian_weights(self.space_order, stencil)
        groups = {}
        for axis, h in enumerate(self.spacing):
            for offset, weight in enumerate(weights, start=1):
                groups.setdefault(weight / h ** 2, []).append((axis, offset))
        centre = (2.0 + padded ** 2 * self.dt ** 2 * sum(w0 / h ** 2 for h in self.spacing)
                  - product * self.dt ** 2)

        def flat(values):
            return np.pad(values, ((0, 0), (halo, halo))).astype(np.float32).ravel()

        self._centre = flat(centre / denominator)
        self._neg_b = flat(-(1.0 - 0.5 * eta * self.dt) / denominator)
        self._k = flat(k)
        self._scalars = [np.float32(weight) for weight in groups]
        width = padded.shape[1] + 2 * halo
        start, stop = halo * width, (halo + padded.shape[0]) * width
        shifts = [[(offset * width if axis == 0 else offset) * sign
                   for axis, offset in group for sign in (1, -1)] for group in groups.values()]
        self._fields = [np.zeros((padded.shape[0] + 2 * halo) * width, np.float32)
                        for _ in range(2)]
        # Per field: the flat field, its updated region, and the shifted neighbour slices.
        self._views = [(f, f[start:stop], [[f[start + s:stop + s] for s in group]
                                           for group in shifts]) for f in self._fields]
        self._tmp = np.zeros(stop - start, np.float32)
        self._sum = np.zeros(stop - start, np.float32)
        if self._pml is not None:
            self._pml.bind(self._fields)
        self._record = (cells[:, 0] + a + halo) * width + cells[:, 1] + a + halo
        self._source_offset = (cells[:, 0] + a) * width + cells[:, 1] + a + halo
        # Point source: delta(x - x_s) ~ 1 / (dx dy) on the source cell.
        self._source_k = k[cells[:, 0] + a, cells[:, 1] + a] / (self.spacing[0] * self.spacing[1])

    def _step(self, current, previous) -> np.ndarray:
        """Overwrite the field ``previous`` (p[n-1]) with p[n+1]; return its updated region."""
        _, centre, neighbours = current
        nxt, tmp, total = previous[1], self._tmp, self._sum
        for group, (views, weight) in enumerate(zip(neighbours, self._scalars)):
            target = total if group == 0 else tmp
            np.add(views[0], views[1], out=target)
            for view in views[2:]:
                np.add(target, view, out=target)
            np.multiply(target, weight, out=target)
            if group:
                np.add(total, tmp, out=total)
        np.multiply(total, self._k, out=total)
        np.multiply(nxt, self._neg_b, out=nxt)
        np.add(nxt, total, out=nxt)
        np.multiply(centre, self._centre, out=tmp)
        np.add(nxt, tmp, out=nxt)
        return nxt

    def run_shot(self, source_index: int, wavelet: np.ndarray) -> np.ndarray:
        """Fire transducer ``source_index`` with ``wavelet``; record at every transducer.

        Parameters
        ----------
        source_index : int
            Index of the source transducer, ``0 <= source_index < num_transducers``.
        wavelet : np.ndarray
            Source time function ``s[n]`` at ``t_n = n dt``, shape ``(num_steps,)``.

        Returns
        -------
        np.ndarray
            float32, shape ``(num_transducers, num_steps)``: pressure at each transducer
            cell at each time ``t_n`` (arbitrary units, linear in the wavelet), with the
            time dispersion removed when ``time_correction`` is set.

        Raises
        ------
        ValueError
            If ``source_index`` is out of range or ``wavelet`` has the wrong shape.
        """
        source_index = int(source_index)
        if not 0 <= source_index < self.cells.shape[0]:
            raise ValueError(f'source index {source_index} out of range '
                             f'[0, {self.cells.shape[0]})')
        wavelet = np.asarray(wavelet, dtype=np.float32)
        if wavelet.shape != (self.num_steps,):
            raise ValueError(f'wavelet must have shape ({self.num_steps},); '
                             f'got {wavelet.shape}')
        correction = None
        if self.time_correction:
            correction = self._correction
            if correction is None or not np.array_equal(self._corrected_for, wavelet):
                correction = TimeDispersionCorrection(self.dt, self.num_steps, wavelet)
                self._correction, self._corrected_for = correction, wavelet.copy()
            wavelet = correction.wavelet
        injection = (self._source_k[source_index] * wavelet).astype(np.float32)
        src = self._source_offset[source_index]
        traces = np.empty((self.num_steps, self.cells.shape[0]), np.float32)
        for field in self._fields:
            field.fill(0.0)
        if self._pml is not None:
            self._pml.reset()
        current, previous = 0, 1
        for n in range(self.num_steps):
            np.take(self._views[current][0], self._record, out=traces[n], mode='clip')
            if n == self.num_steps - 1:
                break
            nxt = self._step(self._views[current], self._views[previous])
            if self._pml is not None:
                self._pml.advance(previous)
            nxt[src] += injection[n]
            current, previous = previous, current
        traces = np.ascontiguousarray(traces.T)
        return traces if correction is None else correction.traces(traces)
