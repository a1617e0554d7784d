"""Entry points: ``run``, ``init``, ``stop``, ``runtime``, ``gather``."""

import asyncio
import inspect
import logging
import sys

from . import context
from .config import make_config
from .runtime.runtime import Runtime

__all__ = ['run', 'init', 'stop', 'runtime', 'gather']

_log = logging.getLogger('mosaic_mpi')


def runtime():
    """The runtime running on this rank.

    Returns
    -------
    Runtime or None
        ``None`` if none has been started (or it has been stopped).
    """
    return context.current()


def init(**config):
    """Start the runtime on this rank.

    On the head (rank 0 of the communicator) it returns the runtime at once. On a worker it serves
    until the head stops the run, then ends the process with exit code 0 (or, with
    ``worker_exit=False``, returns ``None`` so the application can go on).

    Parameters
    ----------
    **config
        Settings of :class:`mosaic_mpi.config.Config` (``comm``, ``log_level``,
        ``oob_threshold``, ``max_chunk``, ``spin_time``, ``max_sleep``, ``worker_exit``).

    Returns
    -------
    Runtime or None
        The head's runtime; a second call returns the same object.

    Raises
    ------
    TypeError
        If a configuration key is unknown (the message names it).
    ValueError
        If a setting is invalid or the communicator has fewer than 2 ranks.
    """
    current = context.current()
    if current is not None:
        return current
    settings = make_config(**config)
    logging.getLogger('mosaic_mpi').setLevel(settings.log_level.upper())
    rt = Runtime(settings)
    context.set_current(rt)
    if rt.is_head:
        return rt
    try:
        code = rt.serve()
    finally:
        context.set_current(None)
    if settings.worker_exit:
        sys.exit(code)
    return None


def stop():
    """Stop the runtime: wait for every submitted task, stop the workers (harmless twice).

    Must be called from synchronous code (or after the event loop running ``main`` has ended);
    inside ``main``, simply return.
    """
    rt = context.current()
    if rt is None:
        return
    try:
        if rt.is_head:
            rt.stop()
    finally:
        context.set_current(None)


def run(main, **config):
    """Run ``await main(runtime)`` on the head, with workers on the other ranks.

    Every rank calls ``run``. The head runs ``main``, waits for every task submitted before
    ``main`` returned, stops every worker and returns ``main``'s value. Workers serve until then and
    end their process with exit code 0 (code after ``run()`` does not run on them).

    Parameters
    ----------
    main : callable
        ``async def main(runtime)`` (a plain function is called as is).
    **config
        Runtime settings (see :func:`init`).

    Returns
    -------
    object
        What ``main`` returned (on the head).

    Raises
    ------
    BaseException
        Whatever ``main`` raised, re-raised on the head after every worker has been stopped.
    """
    rt = init(**config)
    if rt is None:
        return None
    try:
        outcome = main(rt)
        if inspect.isawaitable(outcome):
            outcome = asyncio.run(_await(outcome))
    except BaseException as exc:
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        try:
            rt.stop(code=code, drain=False)
        finally:
            context.set_current(None)
        raise
    stop()
    return outcome


async def _await(awaitable):
    return await awaitable


async def _gather(awaitables):
    return [await a for a in awaitables]


def gather(x):
    """Turn a list of awaitables into one awaitable of the list of their values.

    Parameters
    ----------
    x : list, tuple or object
        Awaitables (task proxies, ``t.result()`` coroutines, ...).

    Returns
    -------
    awaitable or object
        For a list or tuple of awaitables, an awaitable resolving to the list of their values, in
        order; anything else is returned unchanged.
    """
    if isinstance(x, (list, tuple)) and all(inspect.isawaitable(a) for a in x):
        return _gather(list(x))
    return x
