"""Transducer geometry: point transducers on an ellipse inside the model grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

__all__ = ['RingGeometry', 'ring_geometry', 'shot_sources']


@dataclass(frozen=True)
class RingGeometry:
    """Point transducers, each snapped to one grid cell.

    Attributes
    ----------
    cells : np.ndarray
        int64, shape ``(num_transducers, 2)``: grid indices ``(ix, iy)`` of each transducer
        in the (unpadded) model grid.
    positions : np.ndarray
        float64, shape ``(num_transducers, 2)``: positions ``(x, y)`` in metres of the cells
        actually used (``cells * spacing``; the model's first cell is at the origin).
    """

    cells: np.ndarray
    positions: np.ndarray

    @property
    def num_transducers(self) -> int:
        """int: number of transducers."""
        return int(self.cells.shape[0])


def ring_geometry(shape: Tuple[int, int], spacing: Tuple[float, float],
                  num_transducers: int = 128, margin: int = 10) -> RingGeometry:
    """Place transducers evenly in angle on an ellipse inscribed in the model grid.

    Like Stride's default geometry for 2D breast imaging, the ellipse is centred on the grid
    and stays ``margin`` cells inside the model's edge, hence inside the region that is
    not absorbing. Transducer ``k`` is at angle ``2 pi k / num_transducers`` (counted from
    the +x axis towards +y) and snapped to the nearest cell.

    Parameters
    ----------
    shape : tuple of int
        Model grid shape ``(nx, ny)`` in cells.
    spacing : tuple of float
        Grid spacing ``(dx, dy)`` in metres.
    num_transducers : int
        Number of transducers, >= 1.
    margin : int
        Distance in cells between the ellipse and the model's edge, >= 2.

    Returns
    -------
    RingGeometry
        Cells and positions of the transducers.

    Raises
    ------
    ValueError
        If ``num_transducers < 1``, ``margin < 2``, the grid is too small for the margin, or
        two transducers would fall on the same cell (too many for the ring).
    """
    num_transducers = int(num_transducers)
    if num_transducers < 1:
        raise ValueError(f'need at least 1 transducer; got {num_transducers}')
    if margin < 2:
        raise ValueError(f'margin must be >= 2 cells; got {margin}')
    shape = np.asarray(shape, dtype=int)
    semi_axes = (shape - 1) / 2.0 - margin          # in cells
    if np.any(semi_axes < 2):
        raise ValueError(f'grid {tuple(shape)} is too small for a ring {margin} cells '
                         f'inside its edge')
    centre = (shape - 1) / 2.0
    angles = 2.0 * np.pi * np.arange(num_transducers) / num_transducers
    ring = centre + semi_axes * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    cells = np.rint(ring).astype(np.int64)
    unique = np.unique(cells, axis=0)
    if unique.shape[0] != num_transducers:
        raise ValueError(f'{num_transducers} transducers do not fit on a ring of semi-axes '
                         f'{semi_axes.tolist()} cells: some share a grid cell')
    positions = cells * np.asarray(spacing, dtype=float)
    return RingGeometry(cells, positions)


def shot_sources(num_shots: int, num_transducers: int) -> np.ndarray:
    """Choose source transducers spread evenly around the ring.

    Parameters
    ----------
    num_shots : int
        Number of shots, ``1 <= num_shots <= num_transducers``.
    num_transducers : int
        Number of transducers on the ring.

    Returns
    -------
    np.ndarray
        int64, shape ``(num_shots,)``: distinct transducer indices
        ``floor(k * num_transducers / num_shots)``, ``k = 0 .. num_shots - 1``.

    Raises
    ------
    ValueError
        If ``num_shots`` is out of range.
    """
    if not 1 <= num_shots <= num_transducers:
        raise ValueError(f'number of shots must be between 1 and the number of transducers '
                         f'({num_transducers}); got {num_shots}')
    return (np.arange(num_shots, dtype=np.int64) * num_transducers) // num_shots
