"""Entry points: ``run``, ``init``, ``interactive``, ``stop``, ``runtime``, ``gather``."""

import asyncio
import atexit
import inspect
import logging
import os
import signal
import sys
import time
import traceback

from . import context, startup
from .comms import launcher_rank
from .config import make_config
from .core.tessera import TaskArray
from .errors import RuntimeNotRunning
from .progress import progress_bar
from .runtime.loop import assist_running_loop, run as run_loop

__all__ = ['run', 'init', 'interactive', 'stop', 'runtime', 'gather']

_log = logging.getLogger('mosaic_mpi')
_REPORT_GRACE = 2.0     # s the other ranks wait, after a bad setting, for the head to report it


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

    Started as a single process (``python script.py``, no ``mpiexec``) with ``num_workers=W``, the
    head spawns W processes that run the same script with the same arguments; their ``init``
    finds the parent and serves, so the script behaves as under ``mpiexec -n W+1`` (see
    :mod:`mosaic_mpi.startup`).

    Parameters
    ----------
    **config
        Settings of :class:`mosaic_mpi.config.Config` (``comm``, ``num_workers``,
        ``start_timeout``, ``log_level``, ``oob_threshold``, ``max_chunk``, ``spin_time``,
        ``max_sleep``, ``buffer_pool``, ``worker_exit``).

    Returns
    -------
    Runtime or None
        The head's runtime; a second call returns the same object.

    Raises
    ------
    TypeError
        If a configuration key is unknown (the message names it).
    ValueError
        If a setting is invalid, the communicator has a single rank and ``num_workers`` is not
        given, or ``num_workers`` disagrees with the communicator's size.
    SpawnError
        If ``num_workers`` asks for processes to be spawned and the MPI library cannot do it.
    ThreadLevelError
        If MPI was initialised below ``MPI_THREAD_MULTIPLE``.
    RuntimeNotRunning
        If a runtime already ran in this process and its workers have exited.
    """
    current = context.current()
    if current is not None:
        return current
    if context.ended():
        raise RuntimeNotRunning('the mosaic_mpi runtime already ran in this process and its '
                                'workers have exited: start it once per process (or, to start '
                                'it again, pass worker_exit=False on every rank)')
    try:
        settings = make_config(**config)
    except (TypeError, ValueError):
        _quiet_unless_head(config.get('comm'))
        raise
    return _start(lambda: startup.start(settings))


def _quiet_unless_head(comm):
    """A bad setting is every rank's: let the head alone report it (once), the others end.

    Outside a job of several ranks (a single process, a notebook) this returns and the error is
    raised as usual.
    """
    rank = launcher_rank() if comm is None else comm.Get_rank()
    if rank:
        # Not at once: Open MPI's launcher ends the job at the first rank that exits non-zero,
        # which could cut the head off before it has printed the error (seen once in CI).
        time.sleep(_REPORT_GRACE)
        _exit_now(1)


def _start(make, interactive=False):
    """Start the runtime ``make()`` builds (see :mod:`.startup`); on a worker, serve in it."""
    try:
        rt = make()
    except KeyboardInterrupt:
        if interactive:         # a notebook's interrupt: the kernel lives on
            raise
        # Ctrl-C while the ranks are still starting: end quietly, as a running rank would.
        _exit_now(130)
    if rt.config.log_level is not None:
        _show_logs(rt.config.log_level, rt.uid, rt.output is not None)
    context.set_current(rt)
    if rt.is_head:
        _stop_at_exit.install(rt)
        return rt
    return _serve(rt)


def _serve(rt):
    """Serve as a worker in ``rt`` until the head stops the run.

    Parameters
    ----------
    rt : Runtime
        A worker's runtime.

    Returns
    -------
    None
        With ``worker_exit=False``; otherwise the process ends with the head's exit code.
    """
    try:
        code = rt.serve()
    finally:
        _retire(rt)
    if rt.config.worker_exit:
        sys.exit(code)
    return None


async def interactive(switch, num_workers=None, **config):
    """Start or stop a runtime with spawned workers from a running event loop (a notebook).

    ``await mosaic.interactive('on', num_workers=W)`` spawns W worker processes (MPI dynamic
    process creation), makes this process the head and returns its runtime; calls can then be
    awaited in the notebook's cells. ``await mosaic.interactive('off')`` waits for the calls made,
    stops the workers (their processes end) and forgets the runtime; ``'on'`` afterwards starts new
    workers. Each is a no-op when already in the requested state. Classes and functions defined in
    the notebook (``__main__``) travel by value, as the workers do not run the notebook.

    Parameters
    ----------
    switch : {'on', 'off'}
    num_workers : int, optional
        Worker processes to spawn (default: ``MOSAIC_MPI_NUM_WORKERS``, else 1).
    **config
        Other settings of :class:`mosaic_mpi.config.Config` (``comm`` excepted).

    Returns
    -------
    Runtime or None
        ``'on'``: the head's runtime (the running one if there is one); ``'off'``: ``None``.

    Raises
    ------
    ValueError
        If ``switch`` is neither ``'on'`` nor ``'off'``, ``num_workers`` is not an integer >= 1,
        ``comm`` is given, or this process is one of several ranks (``mpiexec -n N``, N > 1).
    SpawnError
        If the MPI library cannot spawn processes (the message says how to use mpiexec instead).
    """
    if switch == 'on':
        current = context.current()
        if current is not None:
            return current
        if 'comm' in config:
            raise ValueError('interactive() runs on the processes it spawns: comm= cannot be given')
        if num_workers is not None:
            config['num_workers'] = num_workers
        settings = make_config(**config)
        rt = _start(lambda: startup.start(settings, interactive=True), interactive=True)
        # The notebook's loop drives MPI itself while it waits, as mosaic.run's loop does.
        rt.restore_loop = assist_running_loop(asyncio.get_running_loop(), rt.transport,
                                              lambda: rt.running)
        return rt
    if switch == 'off':
        current = context.current()
        restore = getattr(current, 'restore_loop', None)
        if restore is not None:
            restore()
        stop()
        return None
    raise ValueError(f"interactive() takes 'on' or 'off', got {switch!r}")


def _exit_now(code):
    """End this process at once (no MPI_Finalize: the other ranks may be gone or going)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _retire(rt):
    """``rt`` has stopped: it is no longer current, and cannot start again if its workers exited
    (spawned workers can be spawned again)."""
    if context.current() is rt:
        context.set_current(None)
    if rt.config.worker_exit and not getattr(rt, 'spawned', False):
        context.mark_ended()


def _show_logs(level, uid, prefixed=False):
    logger = logging.getLogger('mosaic_mpi')
    logger.setLevel(str(level).upper())
    if not logging.getLogger().handlers and not any(
            isinstance(h, logging.StreamHandler) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        prefix = '' if prefixed else f'[{uid}] '      # worker lines are prefixed already
        handler.setFormatter(logging.Formatter(f'{prefix}%(levelname)s %(name)s: %(message)s'))
        logger.addHandler(handler)


class _StopAtExit:
    """Stops a head's runtime left running when the interpreter exits (two-step use).

    After an uncaught exception the workers are stopped at once (exit code 1); otherwise the
    head first waits for the tasks it submitted, as :func:`stop` does.
    """

    def __init__(self):
        self.failed = False
        self.installed = False

    def install(self, rt):
        if not self.installed:
            self.installed = True
            previous = sys.excepthook

            def hook(kind, value, tb):
                self.failed = True
                previous(kind, value, tb)
            sys.excepthook = hook
        atexit.register(self.stop, rt)

    def stop(self, rt):
        if rt.running:
            try:
                rt.stop(code=1 if self.failed else 0, drain=not self.failed,
                        timeout=_GRACE if self.failed else 10.0)
            finally:
                _retire(rt)


_stop_at_exit = _StopAtExit()
_GRACE = 3.0    # seconds workers get to stop after an error before the job is aborted


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
        _retire(rt)


def run(main, **config):
    """Run ``await main(runtime)`` on the head, with workers on the other ranks.

    Every rank calls ``run``. The head runs ``main``, waits for every task submitted before
    ``main`` returned, stops every worker and returns ``main``'s value. Workers serve until then and
    end their process with exit code 0 (code after ``run()`` does not run on them).

    ``python script.py`` (a single process) with ``run(main, num_workers=W)`` spawns W workers
    that run the script too, as ``mpiexec -n W+1 python script.py`` would (see :func:`init`).

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
            outcome = run_loop(_await(outcome), rt.transport)
    except BaseException as exc:
        reason = ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        interrupted = isinstance(exc, KeyboardInterrupt)
        if interrupted:     # a second Ctrl-C (the launcher forwards its own) must not cut this short
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            rt.stop(code=_exit_code(exc), drain=False, reason=reason,
                    timeout=1.0 if interrupted else _GRACE)
        finally:
            _retire(rt)
            if interrupted:
                signal.signal(signal.SIGINT, previous)
        raise
    stop()
    return outcome


def _exit_code(exc):
    """The exit code the job ends with when ``main`` raised ``exc``."""
    if isinstance(exc, SystemExit):
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


async def _await(awaitable):
    return await awaitable


async def _gather(awaitables, bar=None):
    # Coroutines (such as ``t.result()``) start only when awaited: run them as concurrent tasks.
    # Task proxies and futures are already under way, so awaiting them in turn costs nothing extra
    # (and spares an asyncio.Task per item: a gather of 100,000 proxies ran at half speed).
    items = []
    for item in awaitables:
        if bar is not None:
            item = _counted(item, bar)
        if inspect.iscoroutine(item):
            item = asyncio.ensure_future(item)
            item.add_done_callback(_retrieve)
        items.append(item)
    try:
        return [await item for item in items]
    finally:
        if bar is not None:
            bar.close()


async def _counted(awaitable, bar):
    try:
        return await awaitable
    finally:
        bar.update(1)


def _retrieve(future):
    # The first failure is raised by gather; later ones must not be reported as "never retrieved".
    if not future.cancelled():
        future.exception()


def gather(x, progress=False):
    """Turn a list of awaitables into one awaitable of the list of their values.

    Parameters
    ----------
    x : list, tuple or object
        Awaitables (task proxies, ``t.result()`` coroutines, ...).
    progress : bool or str
        Show a progress bar (tqdm) on standard error as the items finish: ``True`` when it is a
        terminal, ``'always'`` in any case.

    Returns
    -------
    awaitable or object
        For a list or tuple of awaitables, an awaitable resolving to the list of their values, in
        order; anything else is returned unchanged.

    Raises
    ------
    ValueError
        If ``progress`` is not ``True``, ``False`` or ``'always'``.
    """
    if isinstance(x, (list, tuple, TaskArray)) and all(inspect.isawaitable(a) for a in x):
        return _gather(list(x), progress_bar(len(x), 'gather', progress))
    return x
