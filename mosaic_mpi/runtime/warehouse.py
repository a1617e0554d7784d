"""The rank's store of task results, with waiters for results not yet there.

Written by the worker's loop thread when tasks end, read by the progress thread when fetches
arrive; one lock guards it.
"""

import threading
from typing import NamedTuple, Any

from ..messages import Select

__all__ = ['Entry', 'Warehouse', 'select']


class Entry(NamedTuple):
    """A stored outcome: ``value`` if ``ok``, else ``error`` (a packed error Payload)."""
    ok: bool
    value: Any
    error: Any


def select(value, selector):
    """The part of a result that ``selector`` refers to.

    Parameters
    ----------
    value : object
        The method's return value.
    selector : Select, int or str
        ``Select.WHOLE`` (1-tuples unwrapped), ``Select.DONE`` (``None``), or an output key.

    Returns
    -------
    object

    Raises
    ------
    IndexError
        If an int key is out of range of a tuple result, or non-zero for a non-tuple result.
    KeyError
        If a str key is not in a dict result.
    """
    if isinstance(selector, Select):
        if selector is Select.DONE:
            return None
        if isinstance(value, tuple) and len(value) == 1:
            return value[0]
        return value
    if isinstance(selector, str):
        try:
            return value[selector]
        except (KeyError, TypeError):
            raise KeyError(f'the result has no output {selector!r}') from None
    if isinstance(value, tuple):
        if -len(value) <= selector < len(value):
            return value[selector]
        raise IndexError(f'output {selector} out of range: the result is a tuple of {len(value)}')
    if selector == 0:
        return value
    raise IndexError(f'output {selector} out of range: the result is a single '
                     f'{type(value).__name__}, only output 0 exists')


class Warehouse:
    """Task outcomes by task id, and callbacks waiting for them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}
        self._waiters = {}

    def put(self, task_id, entry):
        """Store ``entry`` and run the callbacks waiting for it (on this thread)."""
        with self._lock:
            self._entries[task_id] = entry
            waiters = self._waiters.pop(task_id, ())
        for callback in waiters:
            callback(entry)

    def subscribe(self, task_id, callback):
        """Call ``callback(entry)`` once ``task_id`` is stored (at once if it already is)."""
        with self._lock:
            entry = self._entries.get(task_id)
            if entry is None:
                self._waiters.setdefault(task_id, []).append(callback)
                return
        callback(entry)

    def drop(self, task_ids):
        """Forget the outcomes of ``task_ids`` (unknown ids are ignored)."""
        with self._lock:
            for task_id in task_ids:
                self._entries.pop(task_id, None)

    def __len__(self):
        return len(self._entries)

    def __contains__(self, task_id):
        return task_id in self._entries
