"""Sound-speed models: loading Stride-layout HDF5 files and a built-in breast phantom.

A model is a 2D array of sound speed (m/s) on a regular grid with a spacing (m) per axis.
Axis 0 is ``x`` and axis 1 is ``y``, as in Stride's files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

__all__ = ['ModelError', 'SoundSpeedModel', 'load_model', 'make_phantom', 'validate_speeds']

#: Smallest number of cells accepted along each axis (room for a transducer ring).
MIN_CELLS = 16


class ModelError(ValueError):
    """A sound-speed model (file or array) cannot be used; the message names the source and why."""


@dataclass(frozen=True)
class SoundSpeedModel:
    """A 2D sound-speed model.

    Attributes
    ----------
    data : np.ndarray
        Sound speed, float32, shape ``(nx, ny)``, m/s. C-contiguous.
    spacing : tuple of float
        Grid spacing ``(dx, dy)`` in metres.
    source : str
        Where the model came from: a file path, or ``'<phantom>'``.
    time_step : float or None
        Time step (s) suggested by the file (``time/step``), if any.
    num_steps : int or None
        Number of time steps suggested by the file (``time/num``), if any.
    """

    data: np.ndarray
    spacing: Tuple[float, float]
    source: str = '<array>'
    time_step: Optional[float] = None
    num_steps: Optional[int] = None

    @property
    def shape(self) -> Tuple[int, int]:
        """Tuple of int: grid shape ``(nx, ny)`` in cells."""
        return tuple(self.data.shape)

    @property
    def extent(self) -> Tuple[float, float]:
        """Tuple of float: physical size ``((nx - 1) dx, (ny - 1) dy)`` in metres."""
        return tuple((n - 1) * h for n, h in zip(self.data.shape, self.spacing))


def validate_speeds(data, source: str = '<array>') -> np.ndarray:
    """Check a sound-speed array and return it as C-contiguous float32.

    Parameters
    ----------
    data : array_like
        Sound speed in m/s; must be real, 2D, at least ``MIN_CELLS`` cells per axis,
        finite and strictly positive everywhere.
    source : str
        Name of the origin (e.g. a file path), used in error messages.

    Returns
    -------
    np.ndarray
        float32 array, shape ``(nx, ny)``, m/s.

    Raises
    ------
    ModelError
        If any of the conditions above fails; the message names ``source`` and the problem.
    """
    arr = np.asarray(data)
    if arr.dtype.kind not in 'iuf':
        raise ModelError(f'{source}: sound speed has dtype {arr.dtype}; expected real numbers')
    if arr.ndim != 2:
        raise ModelError(f'{source}: sound speed has shape {arr.shape} ({arr.ndim}D); '
                         f'expected a 2D array')
    if min(arr.shape) < MIN_CELLS:
        raise ModelError(f'{source}: sound speed has shape {arr.shape}; expected at least '
                         f'{MIN_CELLS} cells along each axis')
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ModelError(f'{source}: sound speed contains {int(bad.sum())} non-finite '
                         f'value(s) (NaN or inf)')
    if (arr <= 0).any():
        raise ModelError(f'{source}: sound speed contains {int((arr <= 0).sum())} '
                         f'non-positive value(s) (min {float(arr.min())} m/s); '
                         f'speeds must be > 0 m/s')
    return arr


def _validate_spacing(spacing, source: str) -> Tuple[float, float]:
    values = np.asarray(spacing).ravel()
    if values.dtype.kind not in 'iuf':
        raise ModelError(f'{source}: spacing must be numbers (metres); got {values.dtype}')
    values = values.astype(float)
    if values.size != 2:
        raise ModelError(f'{source}: spacing must have 2 values (dx, dy) in metres; '
                         f'got {values.size}')
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ModelError(f'{source}: spacing must be finite and > 0 m; got {values.tolist()}')
    return float(values[0]), float(values[1])


def load_model(path) -> SoundSpeedModel:
    """Read a sound-speed model stored in Stride's HDF5 layout.

    The layout (as written by Stride's ``ScalarField.dump``): dataset ``data`` (2D, m/s),
    dataset ``space/spacing`` (2 values, m), optional scalars ``time/step`` (s) and
    ``time/num``. Other members are ignored.

    Parameters
    ----------
    path : str or os.PathLike
        The HDF5 file.

    Returns
    -------
    SoundSpeedModel
        The validated model, with ``time_step``/``num_steps`` set when the file has them.

    Raises
    ------
    ModelError
        If the file is missing or not HDF5, lacks ``data`` or ``space/spacing``, ``data`` is
        not 2D, contains NaN/inf or non-positive speeds, or the spacing or the time entries
        are invalid. The message names the file.
    """
    import h5py

    source = os.fspath(path)
    if not os.path.exists(source):
        raise ModelError(f'{source}: file does not exist')
    if not os.path.isfile(source):
        raise ModelError(f'{source}: not a regular file')
    try:
        is_hdf5 = h5py.is_hdf5(source)
    except OSError as exc:
        raise ModelError(f'{source}: cannot be read ({exc})') from None
    if not is_hdf5:
        raise ModelError(f'{source}: not an HDF5 file')
    try:
        with h5py.File(source, 'r') as f:
            if 'data' not in f or not isinstance(f['data'], h5py.Dataset):
                raise ModelError(f"{source}: no dataset 'data' (the sound speed, m/s, "
                                 f"in Stride's layout)")
            data = validate_speeds(f['data'][()], source)
            if 'space/spacing' not in f or not isinstance(f['space/spacing'], h5py.Dataset):
                raise ModelError(f"{source}: no dataset 'space/spacing' (grid spacing in m)")
            spacing = _validate_spacing(f['space/spacing'][()], source)
            time_step = _optional_scalar(f, 'time/step', source)
            num = _optional_scalar(f, 'time/num', source)
    except OSError as exc:
        raise ModelError(f'{source}: cannot be read as HDF5 ({exc})') from None
    if time_step is not None and not (np.isfinite(time_step) and time_step > 0):
        raise ModelError(f"{source}: 'time/step' must be finite and > 0 s; got {time_step}")
    if num is not None:
        if not (np.isfinite(num) and num == int(num) and num >= 1):
            raise ModelError(f"{source}: 'time/num' must be a positive integer; got {num}")
        num = int(num)
    return SoundSpeedModel(data, spacing, source, time_step, num)


def _optional_scalar(f, name: str, source: str) -> Optional[float]:
    if name not in f:
        return None
    value = np.asarray(f[name][()])
    if value.size != 1 or value.dtype.kind not in 'iuf':
        raise ModelError(f"{source}: '{name}' must be a single number; got {value!r}")
    return float(value.ravel()[0])


def make_phantom(shape: Tuple[int, int] = (356, 385),
                 spacing: Tuple[float, float] = (0.5e-3, 0.5e-3)) -> SoundSpeedModel:
    """Build a deterministic 2D numerical breast phantom.

    Water (1500 m/s) surrounds an elliptical breast with a skin layer (1600 m/s, 3% of the
    radius) and fatty tissue (1460-1480 m/s, smooth deterministic texture) holding a
    lobulated glandular region (1510-1560 m/s), two fatty lobules (1460 m/s) and three round
    lesions (1580, 1610 and 1650 m/s). The values follow the ranges of the anastasio2D
    breast model distributed with Stride's examples; the geometry is made up here. No random
    numbers are used: every call returns the same array.

    Parameters
    ----------
    shape : tuple of int
        Grid shape ``(nx, ny)`` in cells; each at least ``MIN_CELLS``.
    spacing : tuple of float
        Grid spacing ``(dx, dy)`` in metres.

    Returns
    -------
    SoundSpeedModel
        float32 speeds in m/s, ``source='<phantom>'``, no suggested time axis.

    Raises
    ------
    ModelError
        If the shape or spacing is invalid.
    """
    spacing = _validate_spacing(spacing, '<phantom>')
    nx, ny = (int(n) for n in shape)
    if min(nx, ny) < MIN_CELLS:
        raise ModelError(f'<phantom>: shape {shape} is too small (min {MIN_CELLS} cells)')
    # Normalised coordinates in [-1, 1] across each axis.
    u = np.linspace(-1.0, 1.0, nx)[:, None]
    v = np.linspace(-1.0, 1.0, ny)[None, :]

    c = np.full((nx, ny), 1500.0)
    rho = np.sqrt((u / 0.68) ** 2 + (v / 0.62) ** 2)        # 1 on the breast's outline
    breast = rho <= 1.0
    texture = 1470.0 + 10.0 * np.sin(7.0 * u + 1.3) * np.cos(5.0 * v - 0.4) \
        * (0.6 + 0.4 * np.cos(11.0 * u * v))
    c[breast] = np.clip(texture, 1460.0, 1480.0)[breast]

    # Lobulated glandular region: an ellipse whose radius is modulated with the angle.
    gu, gv = (u + 0.05) / 0.42, (v - 0.08) / 0.34
    angle = np.arctan2(gv, gu)
    radius = np.hypot(gu, gv)
    lobes = 1.0 + 0.18 * np.cos(5.0 * angle) + 0.08 * np.sin(3.0 * angle + 0.7)
    gland = (radius <= lobes) & breast
    c[gland] = (1535.0 + 25.0 * np.cos(9.0 * u) * np.sin(8.0 * v + 0.5))[gland]

    for (cu, cv, r, speed) in [(0.30, -0.30, 0.10, 1460.0), (-0.38, 0.28, 0.08, 1460.0),
                               (0.15, 0.25, 0.07, 1580.0), (-0.20, -0.22, 0.06, 1610.0),
                               (0.38, 0.20, 0.05, 1650.0)]:
        c[(u - cu) ** 2 + (v - cv) ** 2 <= r ** 2] = speed
    c[breast & (rho > 0.97)] = 1600.0          # skin, about 2 mm thick
    return SoundSpeedModel(validate_speeds(c, '<phantom>'), spacing, '<phantom>')
