"""Coordination across the run: ``barrier`` and ``async_for``.

``barrier`` on the head returns once every task submitted so far, by any rank, has finished. The
head waits for its own tasks, then asks every worker in *waves* (an ``Ask.BARRIER`` query each): a
worker answers once the tasks it submitted itself (actor-to-actor calls) have finished, with the
number it has submitted so far. The run is quiet when two waves in a row find the same total and
nothing outstanding: a task submitted in between would have raised some rank's count. This is the
counting method of termination detection (F. Mattern, "Algorithms for distributed termination
detection", Distributed Computing 2, 1987: the four-counter method), with each rank's "sent" and
"finished" counts equal at the moment it answers.

``async_for`` runs an ``async def body(worker, *item)`` per item, each item holding one worker for
the duration of its body, as Mosaic's and Stride's shot loops do.
"""

import asyncio
import logging
import warnings

from ..errors import RuntimeDisconnectedError
from ..messages import Ask, Value
from ..progress import progress_bar
from ..serialisation import dumps

__all__ = ['barrier', 'answer_barrier', 'async_for']

_log = logging.getLogger(__name__)


async def barrier(runtime, timeout=None):
    """Wait until every task submitted so far has finished (see the module docstring).

    Parameters
    ----------
    runtime : Runtime
        The rank's runtime.
    timeout : float, optional
        Seconds to wait at most.

    Raises
    ------
    asyncio.TimeoutError
        If ``timeout`` passed first.
    """
    if timeout is None:
        await _barrier(runtime)
    else:
        await asyncio.wait_for(_barrier(runtime), timeout)


async def _barrier(runtime):
    client = runtime.client
    if not runtime.is_head:             # a worker waits for what it submitted itself
        await client.barrier()
        return
    previous = None
    while True:
        await client.barrier()
        counts = await asyncio.gather(*[client.ask(w.rank, Ask.BARRIER) for w in runtime.workers
                                        if w.rank not in client.lost])      # the living ones
        total = client.submitted + sum(counts)
        if total == previous and client.outstanding == 0:
            return
        previous = total


def answer_barrier(runtime, record):
    """Answer a barrier wave (on a worker's loop): once this rank's own tasks have finished."""
    runtime.loop.create_task(_answer_barrier(runtime, record))


async def _answer_barrier(runtime, record):
    client = runtime.client
    await client.barrier()
    runtime.transport.send(record.requester,
                           Value(record.request_id, True, dumps(client.submitted, lock=False)))


class AsyncFor:
    """The loop ``runtime.async_for(...)`` makes of a body; ``await`` it for the results.

    Parameters
    ----------
    runtime : Runtime
        The head's runtime.
    body : coroutine function
        ``async def body(worker, *item)``.
    items : list of tuple
        The items (``zip`` of the iterables).
    safe : bool
        Whether an item whose worker was lost is dropped (the worker is retired) instead of
        failing the loop.
    timeout : float or None
        Seconds the whole loop may take.
    progress : bool or str
        Progress bar (see :func:`mosaic_mpi.progress.progress_bar`).
    """

    def __init__(self, runtime, body, items, safe, timeout, progress=False):
        self._runtime = runtime
        self._body = body
        self._items = items
        self._safe = safe
        self._timeout = timeout
        self._progress = progress
        self._started = False

    def __await__(self):
        return self._run().__await__()

    async def _run(self):
        if self._started:
            raise RuntimeError('this async_for loop has already been awaited: decorate the body '
                               'again to run it again')
        self._started = True
        runtime = self._runtime
        if runtime._in_async_for:
            raise RuntimeError('async_for cannot be nested: each item holds a worker, so an inner '
                               'loop would wait for workers the outer one holds')
        runtime._in_async_for = True
        try:
            if self._timeout is None:
                results = await self._loop()
            else:
                results = await asyncio.wait_for(self._loop(), self._timeout)
        finally:
            runtime._in_async_for = False
        await runtime.barrier()
        return results

    async def _loop(self):
        items = self._items
        if not items:
            return []
        workers = list(self._runtime.workers)
        free = asyncio.Queue()
        for worker in workers:
            free.put_nowait(worker)
        alive = [len(workers)]
        results = [None] * len(items)
        dropped = set()
        failures = []
        running = set()
        bar = progress_bar(len(items), getattr(self._body, '__name__', 'async_for'),
                           self._progress)

        async def run(index, item, worker):
            keep = True
            try:
                results[index] = await self._body(worker, *item)
            except RuntimeDisconnectedError as error:
                if not self._safe:
                    failures.append(error)
                    return
                keep = False
                alive[0] -= 1
                dropped.add(index)
                warnings.warn(f'async_for: item {index} dropped, its worker {worker.uid} was '
                              f'lost: {error}', RuntimeWarning)
            except Exception as error:
                failures.append(error)
            finally:
                if bar is not None:
                    bar.update(1)
                if keep:
                    free.put_nowait(worker)
                elif alive[0] == 0:
                    free.put_nowait(None)       # wake the submitter: no worker is left

        try:
            for index, item in enumerate(items):
                worker = await free.get()
                if failures:
                    break
                if worker is None:
                    raise RuntimeError('async_for: no workers available (every worker was lost)')
                task = asyncio.ensure_future(run(index, item, worker))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.wait(set(running))
        finally:
            for task in running:            # cancelled from outside (timeout, Ctrl-C)
                task.cancel()
            if bar is not None:
                bar.close()
        if failures:
            raise failures[0]
        if alive[0] == 0 and dropped:
            raise RuntimeError('async_for: no workers available (every worker was lost)')
        return [r for i, r in enumerate(results) if i not in dropped]


def async_for(runtime, *iterables, safe=True, timeout=None, progress=False):
    """Run an async body per item, each item holding one worker while its body runs.

    Used as a decorator, as in Stride::

        @runtime.async_for(shot_ids)
        async def loop(worker, shot_id):
            return await solver(shot_id, runtime=worker).result()

        results = await loop

    Parameters
    ----------
    runtime : Runtime
        The head's runtime.
    *iterables : iterable
        Items are ``zip(*iterables)``; the body receives ``(worker, *item)``.
    safe : bool
        If an item fails with :class:`~mosaic_mpi.errors.RuntimeDisconnectedError` (its worker
        was lost), drop the item with a warning and retire the worker instead of failing the loop.
    timeout : float, optional
        Seconds the whole loop may take; then the running bodies are cancelled and
        ``asyncio.TimeoutError`` is raised.
    progress : bool or str
        Show a progress bar (tqdm) on the head's standard error as items finish: ``True`` when
        it is a terminal, ``'always'`` in any case.

    Returns
    -------
    callable
        A decorator turning ``body`` into an awaitable :class:`AsyncFor` whose value is the list of
        the bodies' results **in item order** (Mosaic returns them in completion order), items
        dropped by ``safe`` left out. At most one item runs per worker at a time; new items start
        as workers free up. If a body raises, no new item starts, the running ones finish, and the
        first exception is raised. The loop ends with :meth:`Runtime.barrier`.

    Raises
    ------
    RuntimeError
        When awaited, if another ``async_for`` is running (they cannot be nested), or if every
        worker was lost.
    ValueError
        If ``progress`` is not ``True``, ``False`` or ``'always'``.
    """
    if progress not in (False, True, 'always', None):
        raise ValueError(f"progress must be True, False or 'always', not {progress!r}")
    items = list(zip(*iterables))

    def decorate(body):
        if not asyncio.iscoroutinefunction(body):
            raise TypeError(f'async_for decorates an `async def body(worker, *item)`, not '
                            f'{body!r}')
        return AsyncFor(runtime, body, items, safe, timeout, progress)
    return decorate
