"""Event loops that drive the rank's transport while they would otherwise wait.

An asyncio loop built here uses a :class:`ProgressSelector`: when the loop runs out of work soon
after the rank last sent or received something, it runs progress cycles itself
(``Transport.assist``) before blocking in ``epoll``. Replies then reach the loop without a
hand-off from the progress thread. After ``spin_time`` without messages it blocks as any loop
does, and the progress thread carries on alone.
"""

import asyncio
import selectors
import time

__all__ = ['ProgressSelector', 'new_event_loop', 'run', 'assist_running_loop']


class ProgressSelector(selectors.DefaultSelector):
    """The platform's default selector, assisting ``transport`` before it blocks.

    Parameters
    ----------
    transport : mosaic_mpi.comms.Transport
        The rank's transport.
    """

    def __init__(self, transport):
        super().__init__()
        self._transport = transport
        self._events = None

    def select(self, timeout=None):
        """Wait for I/O events; assist the transport first (see the module docstring).

        Parameters
        ----------
        timeout : float or None
            Longest wait in seconds, ``None`` for no limit (as ``selectors``).

        Returns
        -------
        list of (SelectorKey, int)
            The ready file objects and their events.
        """
        start = time.monotonic()
        self._events = None
        if self._transport.assist(timeout, self._check):
            # Records delivered (their callbacks are queued) or file objects ready: either way
            # the loop has work; its file objects are polled again on its next iteration.
            events, self._events = self._events, None
            return events or []
        if timeout:
            timeout = max(0.0, timeout - (time.monotonic() - start))
        return super().select(timeout)

    def close(self):
        """Close the selector; the transport's progress thread takes over for good."""
        self._transport.end_assist()
        super().close()

    def _check(self):
        events = super().select(0)
        if events:
            self._events = events
            return True
        return False


class _AssistingSelector(selectors.BaseSelector):
    """Wraps a running loop's selector so that the loop assists ``transport`` before it blocks.

    The loop's file objects stay registered in ``inner``; only :meth:`select` differs, as in
    :class:`ProgressSelector`. Once ``active()`` is false (the runtime stopped) it is ``inner``.
    """

    def __init__(self, inner, transport, active):
        self.inner = inner
        self._transport = transport
        self._active = active
        self._events = None

    def register(self, fileobj, events, data=None):
        return self.inner.register(fileobj, events, data)

    def unregister(self, fileobj):
        return self.inner.unregister(fileobj)

    def modify(self, fileobj, events, data=None):
        return self.inner.modify(fileobj, events, data)

    def get_key(self, fileobj):
        return self.inner.get_key(fileobj)

    def get_map(self):
        return self.inner.get_map()

    def select(self, timeout=None):
        if not self._active():
            return self.inner.select(timeout)
        start = time.monotonic()
        self._events = None
        if self._transport.assist(timeout, self._check):
            events, self._events = self._events, None
            return events or []
        if timeout:
            timeout = max(0.0, timeout - (time.monotonic() - start))
        return self.inner.select(timeout)

    def close(self):
        self._transport.end_assist()
        self.inner.close()

    def _check(self):
        events = self.inner.select(0)
        if events:
            self._events = events
            return True
        return False


def assist_running_loop(loop, transport, active):
    """Make an event loop that is already running (a Jupyter kernel's) assist ``transport``.

    It swaps the selector of a selector-based asyncio loop (``loop._selector``, CPython's
    ``BaseSelectorEventLoop``, the default loop on Linux and macOS and the one ipykernel runs)
    for a wrapper that drives progress before it blocks, as :class:`ProgressSelector` does. Other
    loops (uvloop, Windows' proactor) are left alone: progress is then the progress thread's.

    Parameters
    ----------
    loop : asyncio.AbstractEventLoop
        The running loop (call from its thread).
    transport : mosaic_mpi.comms.Transport
        The rank's transport.
    active : callable
        ``active()`` is false once the runtime has stopped: the wrapper then only delegates.

    Returns
    -------
    callable or None
        ``restore()`` puts the loop's own selector back (call from the loop's thread); ``None`` if
        the loop could not be made to assist.
    """
    inner = getattr(loop, '_selector', None)
    if isinstance(inner, _AssistingSelector) and not inner._active():
        inner = loop._selector = inner.inner        # left by a runtime stopped with stop()
    if not isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop) or not isinstance(
            inner, selectors.BaseSelector) or isinstance(inner, (ProgressSelector,
                                                                 _AssistingSelector)):
        return None
    wrapper = _AssistingSelector(inner, transport, active)
    loop._selector = wrapper

    def restore():
        if loop._selector is wrapper:
            loop._selector = inner
        transport.end_assist()
    return restore


def new_event_loop(transport):
    """An asyncio event loop that assists ``transport`` (see the module docstring).

    Parameters
    ----------
    transport : mosaic_mpi.comms.Transport
        The rank's transport.

    Returns
    -------
    asyncio.AbstractEventLoop
    """
    return asyncio.SelectorEventLoop(ProgressSelector(transport))


def run(coro, transport):
    """Run ``coro`` to completion on a new assisting loop, as ``asyncio.run`` does.

    Parameters
    ----------
    coro : coroutine
        What to run.
    transport : mosaic_mpi.comms.Transport
        The rank's transport.

    Returns
    -------
    object
        The coroutine's value.

    Raises
    ------
    BaseException
        Whatever ``coro`` raised.
    """
    if hasattr(asyncio, 'Runner'):              # Python >= 3.11: Ctrl-C cancels ``coro`` cleanly
        with asyncio.Runner(loop_factory=lambda: new_event_loop(transport)) as runner:
            return runner.run(coro)
    loop = new_event_loop(transport)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
