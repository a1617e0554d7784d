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
are non-zero only in the frame around the model, and updates them there.

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

    Every array (the solver's pressure fields, ``phi``, the coefficients) shares the solver's
    flat layout: rows of ``width`` values (the padded grid's row and ``halo`` zero cells on
    each side), ``halo`` zero rows above and below. The frame is covered by three regions of
    that layout: the ``b = absorbing + 1`` rows at the top and at the bottom (each one
    contiguous slice), and one strided view whose rows join the right-hand strip of a grid
    row to the left-hand strip of the next (they are adjacent in memory, through the halo);
    the few cells of that view that belong to the top or bottom slice have no-op
    coefficients. Differences are offset views (``width`` along x, 1 along y), as in the
    solver.

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
    halo : int
        Zero cells around the padded grid in the solver's fields (>= 1).
    reflection, power : float
        Profile parameters (:func:`pml_profile`).

    Attributes
    ----------
    sigma_x, sigma_y : np.ndarray
        float64, shapes ``(nx,)`` and ``(ny,)``: damping at the cell centres, 1/s.
    """

    def __init__(self, shape, absorbing, spacing, dt, max_speed, k, halo,
                 reflection=PML_REFLECTION, power=PML_POWER):
        nx, ny = (int(n) for n in shape)
        a, halo = int(absorbing), int(halo)
        hx, hy = (float(h) for h in spacing)
        profile = dict(absorbing=a, max_speed=max_speed, reflection=reflection, power=power)
        self.sigma_x = pml_profile(nx, spacing=hx, **profile)
        self.sigma_y = pml_profile(ny, spacing=hy, **profile)
        half_x = pml_profile(nx, spacing=hx, shift=0.5, **profile)[:, None]
        half_y = pml_profile(ny, spacing=hy, shift=0.5, **profile)[None, :]
        sx, sy = self.sigma_x[:, None], self.sigma_y[None, :]
        # phi^{n+1} = decay phi^n + drive (difference of p^{n+1}): the centred discretisation
        # of phi_t = -sigma phi + (sigma' - sigma) p_x (sigma at phi's half cell). The arrays
        # hold phi_x / dx and phi_y / dy, so that div(phi) is a plain sum of differences.
        ones = np.ones((nx, ny))
        grids = [(1.0 - 0.5 * dt * half_x) / (1.0 + 0.5 * dt * half_x) * ones,
                 dt * (sy - half_x) / ((1.0 + 0.5 * dt * half_x) * hx ** 2),
                 (1.0 - 0.5 * dt * half_y) / (1.0 + 0.5 * dt * half_y) * ones,
                 dt * (sx - half_y) / ((1.0 + 0.5 * dt * half_y) * hy ** 2),
                 k]
        no_op = (1.0, 0.0, 1.0, 0.0, 0.0)
        self.width = width = ny + 2 * halo
        size = (nx + 2 * halo) * width
        flat = []
        for grid, neutral in zip(grids, no_op):
            full = np.full((nx + 2 * halo, width), neutral)
            full[halo:halo + nx, halo:halo + ny] = grid
            flat.append(full.ravel())
        b = a + 1
        side_rows = nx - 2 * b + 1
        # Regions: (start, rows, length) in the flat layout, rows `width` apart.
        self.regions = [(halo * width, 1, b * width),
                        ((halo + nx - b) * width, 1, b * width),
                        ((halo + b - 1) * width + halo + ny - b, side_rows, 2 * b + 2 * halo)]
        self._coefficients = []
        for index, region in enumerate(self.regions):
            coefficients = [np.array(self.view(c, region), np.float32) for c in flat]
            if index == 2:
                # Row 0's right part is in the top slice; the last row's left part in the
                # bottom slice: make them no-ops here.
                for c, neutral in zip(coefficients, no_op):
                    c[0, :b] = neutral
                    c[-1, b + 2 * halo:] = neutral
            self._coefficients.append(coefficients)
        self.phi_x = np.zeros(size, np.float32)
        self.phi_y = np.zeros(size, np.float32)
        self._tmp = [np.zeros(c[0].shape, np.float32) for c in self._coefficients]
        self._tmp_y = [np.zeros(c[0].shape, np.float32) for c in self._coefficients]

    def view(self, array, region, offset=0):
        """The region of a flat array (shifted by ``offset`` cells), as a view.

        Parameters
        ----------
        array : np.ndarray
            1D array in the solver's flat layout.
        region : tuple of int
            ``(start, rows, length)``.
        offset : int
            Shift in cells (``width``: next row, 1: next column).

        Returns
        -------
        np.ndarray
            Shape ``(length,)`` for a one-row region, else ``(rows, length)``.
        """
        start, rows, length = region
        start += offset
        if rows == 1:
            return array[start:start + length]
        step = array.strides[0]
        return np.lib.stride_tricks.as_strided(array[start:], shape=(rows, length),
                                               strides=(self.width * step, step))

    def bind(self, fields):
        """Prepare the views of the solver's fields (done once: views are costly to make).

        Parameters
        ----------
        fields : sequence of np.ndarray
            The solver's flat float32 pressure fields.
        """
        w = self.width
        phi = [(self.view(self.phi_x, r), self.view(self.phi_x, r, -w),
                self.view(self.phi_y, r), self.view(self.phi_y, r, -1)) for r in self.regions]
        self._bound = []
        for field in fields:
            self._bound.append([(self.view(field, r), self.view(field, r, w),
                                 self.view(field, r, 1)) + views
                                for r, views in zip(self.regions, phi)])

    def reset(self):
        """Zero the auxiliary fields (before a new shot)."""
        self.phi_x.fill(0.0)
        self.phi_y.fill(0.0)

    def advance(self, index):
        """Add ``k div(phi)`` to the new pressure, then advance ``phi`` with it (one step).

        Parameters
        ----------
        index : int
            Which of the bound fields holds the new pressure (``phi`` at the current time
            enters it; then ``phi`` moves to the new time).
        """
        # Every region's divergence first (it reads phi of the neighbouring region at the
        # current time), then every region's update (it reads the finished new pressure).
        for views, coef, tmp, tmp_y in zip(self._bound[index], self._coefficients, self._tmp,
                                           self._tmp_y):
            centre, _, _, phi_x, phi_x_before, phi_y, phi_y_before = views
            np.subtract(phi_x, phi_x_before, out=tmp)
            np.subtract(phi_y, phi_y_before, out=tmp_y)
            np.add(tmp, tmp_y, out=tmp)
            np.multiply(tmp, coef[4], out=tmp)
            np.add(centre, tmp, out=centre)
        for views, coef, tmp in zip(self._bound[index], self._coefficients, self._tmp):
            centre, below, right, phi_x, _, phi_y, _ = views
            np.subtract(below, centre, out=tmp)
            np.multiply(tmp, coef[1], out=tmp)
            np.multiply(phi_x, coef[0], out=phi_x)
            np.add(phi_x, tmp, out=phi_x)
            np.subtract(right, centre, out=tmp)
            np.multiply(tmp, coef[3], out=tmp)
            np.multiply(phi_y, coef[2], out=phi_y)
            np.add(phi_y, tmp, out=phi_y)
