"""Hand-offs between the progress thread and the event loops, and fetch request ids.

:class:`LoopBridge` carries work from a progress cycle to the event loops that wait for it (one
wake-up per loop per cycle, or at once when the cycle runs on the loop's own thread);
:class:`Requests` numbers this rank's fetch requests and keeps who handles each answer;
:func:`settle` resolves or fails a future once. Used by the client (:mod:`.client`), the
warehouse (:mod:`.objects`) and the worker.
"""

import asyncio
import itertools

from ..messages import Value, make_id

__all__ = ['LoopBridge', 'Requests', 'settle']

class LoopBridge:
    """Hands work from the progress thread to event loops, one wake-up per loop per cycle."""

    def __init__(self):
        self._pending = {}

    def post(self, loop, fn, *args):
        """Queue ``fn(*args)`` for ``loop`` (in a progress cycle)."""
        items = self._pending.get(loop)
        if items is None:
            self._pending[loop] = items = []
        items.append((fn, args))

    def resolve(self, loop, fn, *args):
        """Like :meth:`post`, for ``fn`` that only resolves futures (runs no user code).

        In a cycle run by ``loop``'s own thread it runs at once: the awaiting coroutine then
        resumes in the same loop iteration.
        """
        if asyncio._get_running_loop() is loop:
            try:
                fn(*args)
            except Exception as exc:
                loop.call_exception_handler({'message': 'mosaic_mpi callback failed',
                                             'exception': exc})
        else:
            self.post(loop, fn, *args)

    def flush(self):
        """Wake each loop that has work (in a progress cycle).

        A cycle run by a loop's own thread (see ``Transport.assist``) queues the work on it
        directly: no self-pipe write, and it runs in the same loop iteration.
        """
        pending, self._pending = self._pending, {}
        here = asyncio._get_running_loop()
        for loop, items in pending.items():
            try:
                if loop is here:
                    loop.call_soon(_run_items, loop, items)
                else:
                    loop.call_soon_threadsafe(_run_items, loop, items)
            except RuntimeError:       # the loop has been closed: nobody waits any more
                pass

    @staticmethod
    def about_to_wait(loop):
        """Whether ``loop`` (running, called from its thread) has nothing else to run before it
        next waits: no other ready callback, and no item left in the batch running now.

        Records queued then can go out at once (``Transport.flush_now``) instead of at that wait:
        nothing else would be batched with them. Always false for a loop that is not one of
        asyncio's own (its ready queue cannot be seen).
        """
        return not _items_left and not getattr(loop, '_ready', True)


# Items of the _run_items batch running on this rank that are still to run. One for the rank, not
# per thread: should two loop threads run batches at once, a wrong reading only sends a packet
# sooner or later than it could have gone (flush_now keeps the order), never out of order.
_items_left = 0


def _run_items(loop, items):
    global _items_left
    outer = _items_left
    left = len(items)
    try:
        for fn, args in items:
            left -= 1
            _items_left = left
            try:
                fn(*args)
            except Exception as exc:
                loop.call_exception_handler({'message': 'mosaic_mpi callback failed',
                                             'exception': exc})
    finally:
        _items_left = outer


class Requests:
    """Fetch request ids of this rank and who handles their answers."""

    def __init__(self, rank, first_id=1):
        self._rank = rank
        self._counter = itertools.count(first_id)
        self._handlers = {}

    def new(self, handler, rank):
        """Register ``handler(value_record)`` for a request to ``rank``; returns its id."""
        request_id = make_id(self._rank, next(self._counter))
        self._handlers[request_id] = (handler, rank)
        return request_id

    def pop(self, request_id):
        """The handler of ``request_id`` (removed), or ``None`` if it was failed already."""
        entry = self._handlers.pop(request_id, None)
        return entry[0] if entry is not None else None

    def fail_rank(self, rank, payload):
        """Answer every request still waiting for ``rank`` with an error ``payload``."""
        ids = [i for i, (_, target) in self._handlers.items() if target == rank]
        for request_id in ids:
            handler, _ = self._handlers.pop(request_id)
            handler(Value(request_id, False, payload))


def settle(future, value=None, error=None):
    """Resolve ``future`` with ``value``, or fail it with ``error``, unless it is done already."""
    if future.done():
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)
