"""The comms layer: the transport and its progress thread, and the packets they send over MPI
(:mod:`.wire`, the only module of mosaic_mpi that imports mpi4py)."""

from .transport import Transport
from .wire import mpi_world, abort_world, launcher_rank
from . import spawn

__all__ = ['Transport', 'mpi_world', 'abort_world', 'spawn']
