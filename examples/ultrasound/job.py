"""The forward-modelling job: its configuration, the per-shot worker and the serial driver."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .geometry import RingGeometry, ring_geometry, shot_sources
from .model import ModelError, SoundSpeedModel, load_model, make_phantom
from .discretisation import OPTIMISED_BANDS, accurate_band, phase_velocity_error
from .solver import CFL_SAFETY, AcousticSolver2D, cfl_limit, stable_time_step
from .wavelets import make_wavelet

__all__ = ['DEFAULTS', 'MAX_DEFAULT_STEPS', 'MIN_POINTS_PER_WAVELENGTH', 'BAND_FACTOR',
           'DispersionWarning', 'ShotConfig', 'build_config', 'default_num_steps',
           'dispersion_check', 'ShotRunner', 'forward_model_serial']

#: Default options of the job (also the CLI's defaults).
DEFAULTS = dict(shots=128, steps=None, transducers=128, frequency=500e3, wavelet='ricker',
                absorbing=40, space_order=10, stencil=None)

#: Cap on the default number of time steps when neither the options nor the file set it.
MAX_DEFAULT_STEPS = 2000

#: Fewest grid cells per wavelength (slowest speed, centre frequency) accepted at all.
MIN_POINTS_PER_WAVELENGTH = 3.0

#: Highest frequency of the wavelet that must be carried accurately, as a multiple of the
#: centre frequency (a Ricker's spectrum there is 20% of its peak; a 3-cycle tone burst's
#: main lobe ends at 1.67 times its centre frequency).
BAND_FACTOR = 2.0


class DispersionWarning(UserWarning):
    """The grid cannot carry the requested frequency accurately (the message gives the error)."""


def dispersion_check(model: SoundSpeedModel, frequency: float, space_order: int,
                     stencil: str, distance: float = None):
    """The points-per-wavelength rule, and the phase error expected when it is broken.

    The stencil's phase velocity is within 1e-3 of the truth up to ``k h = b``
    (:func:`~ultrasound.discretisation.accurate_band`); the rule asks that
    ``BAND_FACTOR * frequency`` stays below it at the slowest speed, i.e. at least
    ``BAND_FACTOR * 2 pi / b`` cells per wavelength at the centre frequency (5.7 for the
    default optimised order 10, 19 for Taylor order 4).

    Parameters
    ----------
    model : SoundSpeedModel
        The model (slowest speed, coarsest spacing).
    frequency : float
        Centre frequency, Hz.
    space_order, stencil
        The Laplacian (:func:`~ultrasound.discretisation.laplacian_weights`).
    distance : float, optional
        Propagation distance for the phase error, m; default the model's larger extent.

    Returns
    -------
    tuple of (float, float, str or None)
        Cells per wavelength at the centre frequency, the cells the rule asks for, and the
        warning text when the rule is broken (else ``None``).
    """
    min_speed, h = float(model.data.min()), max(model.spacing)
    points = min_speed / (frequency * h)
    band = accurate_band(space_order, stencil)
    needed = BAND_FACTOR * 2.0 * math.pi / band
    if points >= needed:
        return points, needed, None
    distance = max(model.extent) if distance is None else distance
    errors = []
    for f in (frequency, BAND_FACTOR * frequency):
        kh = min(2.0 * math.pi * f * h / min_speed, math.pi)
        relative = abs(float(phase_velocity_error(kh, space_order, stencil)))
        error = 2.0 * math.pi * f * distance / min_speed * relative
        errors.append(f'{error:.2f} rad at {f / 1e3:g} kHz' if error < 10 else
                      f'{error:.0f} rad at {f / 1e3:g} kHz')
    return points, needed, (
        f'{frequency / 1e3:g} kHz gives {points:.2f} cells per wavelength at {min_speed:g} m/s, '
        f'fewer than the {needed:.2f} the {stencil} order-{space_order} stencil needs to carry '
        f'{BAND_FACTOR:g} x the centre frequency; expected phase error over '
        f'{distance * 1e3:.0f} mm (the model\'s larger extent): {" and ".join(errors)} '
        f'(use a lower --frequency, or a finer model grid)')


@dataclass(frozen=True)
class ShotConfig:
    """Everything needed to compute the shots (identical on every rank).

    Attributes
    ----------
    model : SoundSpeedModel
        The sound-speed model.
    geometry : RingGeometry
        The transducers.
    dt : float
        Time step, s.
    num_steps : int
        Number of time samples per trace.
    frequency : float
        Centre frequency of the wavelet, Hz.
    wavelet_kind : str
        ``'ricker'`` or ``'toneburst'``.
    wavelet : np.ndarray
        float32, shape ``(num_steps,)``: the source time function.
    source_indices : np.ndarray
        int64, shape ``(num_shots,)``: transducer fired in each shot.
    absorbing : int
        Sponge width, cells.
    space_order : int
        Order of the Laplacian (2 to 12).
    stencil : str
        ``'taylor'`` or ``'optimised'`` weights.
    """

    model: SoundSpeedModel
    geometry: RingGeometry
    dt: float
    num_steps: int
    frequency: float
    wavelet_kind: str
    wavelet: np.ndarray
    source_indices: np.ndarray
    absorbing: int
    space_order: int
    stencil: str = 'taylor'

    @property
    def num_shots(self) -> int:
        """int: number of shots."""
        return int(self.source_indices.size)

    def solver_arguments(self) -> dict:
        """Keyword arguments of :class:`ShotRunner` (plain values and numpy arrays).

        Returns
        -------
        dict
            ``model, spacing, dt, num_steps, transducers, wavelet, absorbing, space_order,
            stencil``.
        """
        return dict(model=self.model.data, spacing=self.model.spacing, dt=self.dt,
                    num_steps=self.num_steps, transducers=self.geometry.cells,
                    wavelet=self.wavelet, absorbing=self.absorbing,
                    space_order=self.space_order, stencil=self.stencil)


def default_num_steps(model: SoundSpeedModel, dt: float, frequency: float) -> int:
    """Steps for a wave to cross the model once at the slowest speed, after the wavelet.

    ``T = max((nx - 1) dx, (ny - 1) dy) / c_min + 3 / f`` (``3 / f`` covers the Ricker
    wavelet's delay and tail), ``num_steps = ceil(T / dt) + 1``, capped at
    :data:`MAX_DEFAULT_STEPS` to keep the default job fast.

    Parameters
    ----------
    model : SoundSpeedModel
        The model (speeds in m/s, spacing in m).
    dt : float
        Time step, s.
    frequency : float
        Centre frequency of the wavelet, Hz.

    Returns
    -------
    int
        Number of time steps.
    """
    duration = max(model.extent) / float(model.data.min()) + 3.0 / frequency
    return min(int(math.ceil(duration / dt)) + 1, MAX_DEFAULT_STEPS)


def build_config(model=None, shots: int = DEFAULTS['shots'],
                 steps: Optional[int] = None, transducers: int = DEFAULTS['transducers'],
                 frequency: float = DEFAULTS['frequency'], wavelet: str = DEFAULTS['wavelet'],
                 absorbing: int = DEFAULTS['absorbing'],
                 space_order: int = DEFAULTS['space_order'],
                 stencil: str = DEFAULTS['stencil']) -> ShotConfig:
    """Load or build the model and derive the time axis, geometry, wavelet and shots.

    The time step is the file's ``time/step`` when present and CFL-safe, else
    :func:`~ultrasound.solver.stable_time_step`. The number of steps is ``steps`` if
    given, else the file's ``time/num``, else :func:`default_num_steps`.

    Parameters
    ----------
    model : str or os.PathLike or SoundSpeedModel, optional
        Path of a Stride-layout HDF5 model, or a model already built; ``None`` uses
        :func:`make_phantom`.
    shots : int
        Number of shots, spread evenly around the ring.
    steps : int, optional
        Number of time steps.
    transducers : int
        Number of transducers on the ring.
    frequency : float
        Centre frequency, Hz.
    wavelet : {'ricker', 'toneburst'}
        Source wavelet.
    absorbing : int
        Sponge width in cells.
    space_order : {2, 4, 6, 8, 10, 12}
        Order of the Laplacian.
    stencil : {'taylor', 'optimised'}, optional
        Weights of the Laplacian; default (``None``): optimised for the orders that have
        them (8-12), else Taylor.

    Returns
    -------
    ShotConfig
        The validated configuration.

    Raises
    ------
    ModelError
        If the model file is unusable, or its ``time/step`` exceeds ``CFL_SAFETY`` times
        the stability limit.
    ValueError
        If an option is out of range (shots, steps, transducers, frequency too high for the
        grid, wavelet name, order, stencil, layer width).

    Warns
    -----
    DispersionWarning
        If the frequency breaks the points-per-wavelength rule of :func:`dispersion_check`;
        the message gives the expected phase error.
    """
    if model is None:
        sound_speed = make_phantom()
    elif isinstance(model, SoundSpeedModel):
        sound_speed = model
    else:
        sound_speed = load_model(model)
    max_speed, min_speed = float(sound_speed.data.max()), float(sound_speed.data.min())
    if not (math.isfinite(frequency) and frequency > 0):
        raise ValueError(f'frequency must be finite and > 0 Hz; got {frequency}')
    points = min_speed / (frequency * max(sound_speed.spacing))
    if points < MIN_POINTS_PER_WAVELENGTH:
        raise ValueError(f'frequency {frequency:g} Hz gives {points:.2f} cells per wavelength '
                         f'at {min_speed:g} m/s; need >= {MIN_POINTS_PER_WAVELENGTH:g}')
    if stencil is None:
        stencil = 'optimised' if space_order in OPTIMISED_BANDS else 'taylor'
    message = dispersion_check(sound_speed, frequency, space_order, stencil)[2]
    if message is not None:
        warnings.warn(message, DispersionWarning, stacklevel=2)
    if sound_speed.time_step is not None:
        dt = sound_speed.time_step
        limit = cfl_limit(max_speed, sound_speed.spacing, space_order, stencil)
        if dt > CFL_SAFETY * limit:
            raise ModelError(f'{sound_speed.source}: time/step = {dt:g} s is not CFL-safe: '
                             f'the limit for c_max = {max_speed:g} m/s and spacing '
                             f'{sound_speed.spacing} m is {limit:.4g} s, and at most '
                             f'{CFL_SAFETY:g} of it ({CFL_SAFETY * limit:.4g} s) is accepted')
    else:
        dt = stable_time_step(max_speed, sound_speed.spacing, space_order, stencil=stencil)
    if steps is not None:
        num_steps = int(steps)
    elif sound_speed.num_steps is not None:
        num_steps = sound_speed.num_steps
    else:
        num_steps = default_num_steps(sound_speed, dt, frequency)
    if num_steps < 2:
        raise ValueError(f'number of time steps must be >= 2; got {num_steps}')
    if absorbing < 0:
        raise ValueError(f'absorbing width must be >= 0 cells; got {absorbing}')
    geometry = ring_geometry(sound_speed.shape, sound_speed.spacing, transducers)
    return ShotConfig(model=sound_speed, geometry=geometry, dt=float(dt), num_steps=num_steps,
                      frequency=float(frequency), wavelet_kind=wavelet,
                      wavelet=make_wavelet(wavelet, frequency, dt, num_steps),
                      source_indices=shot_sources(int(shots), geometry.num_transducers),
                      absorbing=int(absorbing), space_order=int(space_order),
                      stencil=stencil)


class ShotRunner:
    """Computes shots for one fixed model, geometry and wavelet (one solver, reused).

    This plain class is what runs a shot in both modes: :func:`forward_model_serial` uses
    it directly and ``ultrasound.tessera.ShotSolver`` (the runtime's actor) subclasses it
    without overriding anything, so distributed traces are bit-identical to serial ones.

    Parameters
    ----------
    model : np.ndarray
        Sound speed, shape ``(nx, ny)``, m/s.
    spacing : tuple of float
        ``(dx, dy)`` in metres.
    dt : float
        Time step, s.
    num_steps : int
        Samples per trace.
    transducers : np.ndarray
        int64, shape ``(num_transducers, 2)``: transducer cells.
    wavelet : np.ndarray
        float32, shape ``(num_steps,)``.
    absorbing : int
        Sponge width, cells.
    space_order : {2, 4, 6, 8, 10, 12}
        Order of the Laplacian.
    stencil : {'taylor', 'optimised'}
        Weights of the Laplacian.
    """

    def __init__(self, model, spacing, dt, num_steps, transducers, wavelet,
                 absorbing=DEFAULTS['absorbing'], space_order=DEFAULTS['space_order'],
                 stencil='optimised'):
        self.solver = AcousticSolver2D(model, spacing, dt, num_steps, transducers,
                                       absorbing=absorbing, space_order=space_order,
                                       stencil=stencil)
        self.wavelet = np.asarray(wavelet, dtype=np.float32)

    def run_shot(self, source_index: int) -> np.ndarray:
        """Compute one shot.

        Parameters
        ----------
        source_index : int
            Transducer that fires.

        Returns
        -------
        np.ndarray
            float32, shape ``(num_transducers, num_steps)``: the traces.
        """
        return self.solver.run_shot(source_index, self.wavelet)


def forward_model_serial(config: ShotConfig) -> np.ndarray:
    """Compute every shot of ``config`` in this process, one after the other.

    Parameters
    ----------
    config : ShotConfig
        The job.

    Returns
    -------
    np.ndarray
        float32, shape ``(num_shots, num_transducers, num_steps)``.
    """
    runner = ShotRunner(**config.solver_arguments())
    return np.stack([runner.run_shot(int(s)) for s in config.source_indices])
