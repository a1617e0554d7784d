"""Which runtime is current on this rank.

Proxies that arrive by unpickling bind to the current runtime on first use, so nothing in the
package needs to import the package root to reach a global.
"""

__all__ = ['current', 'set_current', 'require']

_current = None
_ended = False


def current():
    """The runtime running on this rank, or ``None``."""
    return _current


def set_current(runtime):
    """Make ``runtime`` (or ``None``) the current runtime of this rank."""
    global _current
    _current = runtime


def require():
    """The current runtime.

    Raises
    ------
    RuntimeNotRunning
        If there is none: call ``mosaic_mpi.init()`` or ``mosaic_mpi.run(main)`` first.
    """
    if _current is None:
        from .errors import RuntimeNotRunning
        raise RuntimeNotRunning('no mosaic_mpi runtime is running on this rank: start one with '
                                'mosaic_mpi.run(main) or mosaic_mpi.init()')
    return _current


def mark_ended():
    """Record that a runtime ran and its workers have exited (no second one can start)."""
    global _ended
    _ended = True


def ended():
    """bool: whether a runtime already ran here and its workers exited."""
    return _ended
