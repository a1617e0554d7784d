"""2D ultrasound forward modelling (physics of ``examples/ultrasound_forward_2d.py``).

Modules: :mod:`.model` (sound-speed models), :mod:`.geometry` (transducer ring),
:mod:`.wavelets`, :mod:`.discretisation` (stencils, dispersion analysis, CFL limit),
:mod:`.dispersion` (removal of the time dispersion), :mod:`.boundary` (the PML),
:mod:`.solver` (finite-difference solver), :mod:`.job` (configuration and serial driver),
:mod:`.output` (HDF5 and PNG), :mod:`.validate` (comparison with the exact solution; needs
scipy) and :mod:`.tessera` (the runtime's actor; imports ``mosaic_mpi``). The last two are
not imported here.
"""

from .geometry import RingGeometry, ring_geometry, shot_sources
from .job import (DEFAULTS, DispersionWarning, ShotConfig, ShotRunner, build_config,
                  forward_model_serial)
from .model import ModelError, SoundSpeedModel, load_model, make_phantom, validate_speeds
from .solver import AcousticSolver2D, cfl_limit, damping_profile, stable_time_step
from .wavelets import make_wavelet, ricker, tone_burst

__all__ = ['AcousticSolver2D', 'DEFAULTS', 'DispersionWarning', 'ModelError', 'RingGeometry',
           'ShotConfig', 'ShotRunner', 'SoundSpeedModel', 'build_config', 'cfl_limit', 'damping_profile',
           'forward_model_serial', 'load_model', 'make_phantom', 'make_wavelet', 'ricker',
           'ring_geometry', 'shot_sources', 'stable_time_step', 'tone_burst',
           'validate_speeds']
