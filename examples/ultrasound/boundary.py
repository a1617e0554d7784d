"""Perfectly matched layer (PML) for the second-order acoustic wave equation in 2D.

Formulation of Grote, M. J. & Sim, I. (2010), "Efficient PML for the wave equation",
arXiv:1001.0319: with damping ``sigma_x(x)`` and ``sigma_y(y)`` (0 inside the model),

    p_tt + (sigma_x + sigma_y) p_t + sigma_x sigma_y p = c^2 (laplacian(p) + div(phi))
    phi_x,t = -sigma_x phi_x + (sigma_y - sigma_x) p_x
    phi_y,t = -sigma_y phi_y + (sigma_x - sigma_y) p_y

(the complex coordinate stretching ``d/dx -> d/dx / (1 + sigma_x / (i omega))`` written in
the time domain), which absorbs waves at every angle of incidence with no reflection in the
continuum. ``phi_x`` lives at the half cells ``(i + 1/2, j)`` and ``phi_y`` at
``(i, j + 1/2)``; ``p_x``, ``p_y`` and ``div(phi)`` are compact two-point differences (phi is
non-zero only in the layer, where low order suffices). The damping terms of the ``p``
equation enter the solver's leapfrog update; this module holds the auxiliary fields, which
only exist in the frame of four blocks around the model, and updates them.

Profile: ``sigma(d) = sigma_max (d / A)^n`` at depth ``d`` into a layer of ``A`` cells, with
``sigma_max = (n + 1) c_max ln(1 / R) / (2 A h)``, the value for which a wave crossing the
layer and back at normal incidence is reduced by ``R`` in the continuum (Collino, F. &
Tsogka, C. (2001), Geophysics 66(1), 294-307). :data:`PML_POWER` and :data:`PML_REFLECTION`
were chosen by measurement (``examples/ultrasound/validate.py``, docs/ultrasound.md).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ['PML_POWER', 'PML_REFLECTION', 'pml_profile', 'PerfectlyMatchedLayer']

#: Exponent ``n`` of the damping profile.
PML_POWER = 2.0

#: Target continuum reflection ``R`` at normal incidence.
PML_REFLECTION = 1e-4


def pml_profile(num: int, absorbing: int, spacing: float, max_speed: float,
                reflection: float = PML_REFLECTION, power: float = PML_POWER, shift=0.0):
    """Damping ``sigma`` (1/s) along one axis of the padded grid.

    Parameters
    ----------
    num : int
        Cells along the axis (model plus ``absorbing`` on each side).
    absorbing : int
        Layer width ``A`` in cells (>= 1).
    spacing : float
        Grid spacing, m.
    max_speed : float
        Sound speed used to scale the profile, m/s.
    reflection : float
        Target reflection ``R`` in ``(0, 1)``.
    power : float
        Profile exponent ``n`` > 0.
    shift : float
        0 for the cell centres ``i``, 0.5 for the half cells ``i + 1/2``.

    Returns
    -------
    np.ndarray
        float64, shape ``(num,)``: ``sigma`` at ``i + shift``; 0 inside the model.

    Raises
    ------
    ValueError
        If ``reflection`` is not in ``(0, 1)`` or ``absorbing < 1``.
    """
    if not 0 < reflection < 1:
        raise ValueError(f'reflection must be in (0, 1); got {reflection}')
    if absorbing < 1:
        raise ValueError(f'PML width must be >= 1 cell; got {absorbing}')
    position = np.arange(num) + shift
    depth = np.maximum(np.maximum(absorbing - position, position - (num - 1 - absorbing)), 0.0)
    sigma_max = (power + 1.0) * max_speed * math.log(1.0 / reflection) / (2.0 * absorbing
                                                                          * spacing)
    return sigma_max * (depth / absorbing) ** power


class PerfectlyMatchedLayer:
    """Auxiliary fields of the PML and their update, on the frame around the model.

    Parameters
    ----------
    shape : tuple of int
        Padded grid ``(nx, ny)`` (model plus ``absorbing`` cells per side).
    absorbing : int
        Layer width in cells, >= 1.
    spacing : tuple of float
        ``(dx, dy)``, m.
    dt : float
        Time step, s.
    max_speed : float
        Largest sound speed, m/s (scales the profile).
    k : np.ndarray
        float64, shape ``shape``: ``c^2 dt^2 / (1 + (sigma_x + sigma_y) dt / 2)``, the factor
        of the right-hand side in the solver's update.
    reflection, power : float
        Profile parameters (:func:`pml_profile`).

    Attributes
    ----------
    sigma_x, sigma_y : np.ndarray
        float64, shapes ``(nx,)`` and ``(ny,)``: damping at the cell centres, 1/s.
    """

    def __init__(self, shape, absorbing, spacing, dt, max_speed, k,
                 reflection=PML_REFLECTION, power=PML_POWER):
        nx, ny = (int(n) for n in shape)
        a = int(absorbing)
        hx, hy = (float(h) for h in spacing)
        profile = dict(absorbing=a, max_speed=max_speed, reflection=reflection, power=power)
        self.sigma_x = pml_profile(nx, spacing=hx, **profile)
        self.sigma_y = pml_profile(ny, spacing=hy, **profile)
        half_x = pml_profile(nx, spacing=hx, shift=0.5, **profile)[:, None]
        half_y = pml_profile(ny, spacing=hy, shift=0.5, **profile)[None, :]
        sx, sy = self.sigma_x[:, None], self.sigma_y[None, :]
        # phi^{n+1} = decay phi^n + drive (p^{n+1} difference); decay/drive are the centred
        # (trapezoidal) discretisation of phi_t = -sigma phi + (sigma' - sigma) p_x.
        decay_x = (1.0 - 0.5 * dt * half_x) / (1.0 + 0.5 * dt * half_x) + 0.0 * sy
        drive_x = dt * (sy - half_x) / ((1.0 + 0.5 * dt * half_x) * hx)
        decay_y = (1.0 - 0.5 * dt * half_y) / (1.0 + 0.5 * dt * half_y) + 0.0 * sx
        drive_y = dt * (sx - half_y) / ((1.0 + 0.5 * dt * half_y) * hy)
        # The frame: four blocks, one cell wider than the layer (phi_x is non-zero at the
        # half cell just inside it); phi is 0 elsewhere, so only the blocks are computed.
        b = a + 1
        self.blocks = [(slice(0, b), slice(0, ny)), (slice(nx - b, nx), slice(0, ny)),
                       (slice(b, nx - b), slice(0, b)), (slice(b, nx - b), slice(ny - b, ny))]
        # phi arrays with one zero cell before each axis: phi_x[i + 1, j + 1] is at (i + 1/2, j).
        self.phi_x = np.zeros((nx + 1, ny + 1), np.float32)
        self.phi_y = np.zeros((nx + 1, ny + 1), np.float32)
        self._coefficients = []
        for bi, bj in self.blocks:
            self._coefficients.append(tuple(
                np.ascontiguousarray(c[bi, bj], dtype=np.float32)
                for c in (decay_x, drive_x, decay_y, drive_y, k / hx, k / hy)))
        self._tmp = [np.zeros(c[0].shape, np.float32) for c in self._coefficients]

    def reset(self):
        """Zero the auxiliary fields (before a new shot)."""
        self.phi_x.fill(0.0)
        self.phi_y.fill(0.0)

    def add_divergence(self, field):
        """Add ``k div(phi)`` (phi at the current time) to the new pressure, on the frame.

        Parameters
        ----------
        field : np.ndarray
            float32, shape ``(nx, ny)``: a view of the new pressure on the padded grid.
        """
        for (bi, bj), coef, tmp in zip(self.blocks, self._coefficients, self._tmp):
            i0, i1, j0, j1 = bi.start, bi.stop, bj.start, bj.stop
            np.subtract(self.phi_x[i0 + 1:i1 + 1, j0 + 1:j1 + 1],
                        self.phi_x[i0:i1, j0 + 1:j1 + 1], out=tmp)
            np.multiply(tmp, coef[4], out=tmp)
            target = field[bi, bj]
            np.add(target, tmp, out=target)
            np.subtract(self.phi_y[i0 + 1:i1 + 1, j0 + 1:j1 + 1],
                        self.phi_y[i0 + 1:i1 + 1, j0:j1], out=tmp)
            np.multiply(tmp, coef[5], out=tmp)
            np.add(target, tmp, out=target)

    def update(self, field):
        """Advance ``phi`` by one step with the new pressure.

        Parameters
        ----------
        field : np.ndarray
            float32, shape ``(nx + 1, ny + 1)``: a view of the new pressure on the padded grid
            and one more cell along each axis (zero: the wall beyond the layer).
        """
        for (bi, bj), coef, tmp in zip(self.blocks, self._coefficients, self._tmp):
            i0, i1, j0, j1 = bi.start, bi.stop, bj.start, bj.stop
            centre = field[i0:i1, j0:j1]
            phi = self.phi_x[i0 + 1:i1 + 1, j0 + 1:j1 + 1]
            np.subtract(field[i0 + 1:i1 + 1, j0:j1], centre, out=tmp)
            np.multiply(tmp, coef[1], out=tmp)
            np.multiply(phi, coef[0], out=phi)
            np.add(phi, tmp, out=phi)
            phi = self.phi_y[i0 + 1:i1 + 1, j0 + 1:j1 + 1]
            np.subtract(field[i0:i1, j0 + 1:j1 + 1], centre, out=tmp)
            np.multiply(tmp, coef[3], out=tmp)
            np.multiply(phi, coef[2], out=phi)
            np.add(phi, tmp, out=phi)
