"""The comms layer: the only part of mosaic_mpi that imports mpi4py."""

from .transport import Transport, mpi_world, abort_world

__all__ = ['Transport', 'mpi_world', 'abort_world']
