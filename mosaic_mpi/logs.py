"""The runtime's logger: standard :mod:`logging` with Mosaic's ``perf`` level and names.

Mosaic's logger has ``debug``, ``perf`` (a level between debug and info), ``info``, ``warning``
(``warn``) and ``error``; Stride's code calls ``mosaic.logger().perf(...)``. Here they are methods
of a :class:`logging.LoggerAdapter` over the package's logger (``'mosaic_mpi'``), so every record
goes through :mod:`logging` and the application decides where it ends up.
"""

import logging

__all__ = ['PERF', 'MosaicLogger', 'logger']

PERF = 19       #: Mosaic's ``perf`` level (between DEBUG = 10 and INFO = 20)
logging.addLevelName(PERF, 'PERF')


class MosaicLogger(logging.LoggerAdapter):
    """A :class:`logging.LoggerAdapter` with Mosaic's ``perf`` and ``warn``.

    Parameters
    ----------
    logger : logging.Logger
        The logger records go to.
    """

    def __init__(self, logger):
        super().__init__(logger, {})

    def perf(self, msg, *args, **kwargs):
        """Log ``msg`` at the :data:`PERF` level (performance figures)."""
        self.log(PERF, msg, *args, **kwargs)

    def warn(self, msg, *args, **kwargs):
        """Same as :meth:`warning` (Mosaic's spelling)."""
        self.warning(msg, *args, **kwargs)

    def process(self, msg, kwargs):
        return msg, kwargs


_DEFAULT = MosaicLogger(logging.getLogger('mosaic_mpi'))


def logger():
    """The logger of the running runtime, or the package's when none runs (Mosaic's
    ``mosaic.logger()``).

    Returns
    -------
    MosaicLogger
        A logger with ``debug``, ``perf``, ``info``, ``warning``/``warn`` and ``error``.
    """
    from . import context
    current = context.current()
    return current.logger if current is not None else _DEFAULT
