"""The rank's store: task results, with waiters for results not yet there, and warehouse objects.

A warehouse object (``runtime.put``) is a value that is already there when its id is made: an
entry like a finished task's, owned by the rank that put it, under an id from the same counter as
task ids (so the two never collide). Published objects also have a copy on every other rank,
under the same id. Whereas a missing task result is waited for (the task has not finished),
a missing object is never waited for: it was dropped (a *tombstone* remembers that) or never
existed, and a read fails at once with ``KeyError``.

Written by the worker's loop thread when tasks end, read by the progress thread when fetches
arrive; one lock guards it.
"""

import threading
from typing import NamedTuple, Any

from ..messages import Select, Value, id_rank
from ..errors import SerialisationError
from ..serialisation import dumps
from .failures import pack_error
from .gcpause import QueuedCalls

__all__ = ['Entry', 'Warehouse', 'select', 'value_for', 'missing_object']


class Entry(NamedTuple):
    """A stored outcome: ``value`` if ``ok``, else ``error`` (a packed error Payload);
    ``label`` names what produced it (``'Solver.solve'``), for error messages."""
    ok: bool
    value: Any
    error: Any
    label: str = ''


def select(value, selector):
    """The part of a result that ``selector`` refers to.

    Parameters
    ----------
    value : object
        The method's return value.
    selector : Select, int or str
        ``Select.WHOLE`` (1-tuples unwrapped), ``Select.DONE`` (``None``), ``Select.OBJECT``
        (the value as it is), or an output key.

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
        if selector is Select.WHOLE and isinstance(value, tuple) and len(value) == 1:
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


def value_for(fetch, entry, threshold):
    """The :class:`~mosaic_mpi.messages.Value` answering ``fetch`` with ``entry``.

    Parameters
    ----------
    fetch : Fetch
        The request.
    entry : Entry
        What is stored under the fetched id.
    threshold : int
        Bytes from which buffers travel out of band.

    Returns
    -------
    Value
        The selected part of the value, or the error (the task's, or the selection's).
    """
    if not entry.ok:
        return Value(fetch.request_id, False, entry.error)
    try:
        return Value(fetch.request_id, True, dumps(select(entry.value, fetch.selector), threshold))
    except (IndexError, KeyError) as exc:           # no such output
        return Value(fetch.request_id, False, pack_error(exc, ''))
    except Exception as exc:                        # the value cannot be pickled
        if entry.label:
            exc = SerialisationError(f'the result of {entry.label} (task {fetch.task_id}) '
                                     f'cannot be sent: {exc}')
        return Value(fetch.request_id, False, pack_error(exc, ''))


def missing_object(object_id, dropped, uid=None):
    """The ``KeyError`` of reading a warehouse object that is not there.

    Parameters
    ----------
    object_id : int
        Its id (the last 32 hex digits of its uid).
    dropped : bool
        Whether the rank that looked saw it dropped.
    uid : str, optional
        Its uid, if known (the owner of a dropped id no longer knows its type).

    Returns
    -------
    KeyError
    """
    label = f'warehouse object {uid or f"ware-*-{object_id:032x}"}'
    if dropped:
        return KeyError(f'{label} was dropped')
    owner = id_rank(object_id)
    where = 'head' if owner == 0 else f'worker:{owner}'
    return KeyError(f'{label} is not in the warehouse of {where}, its owner (dropped, or not '
                    f'a reference made in this run)')


class Warehouse:
    """Task outcomes by task id and callbacks waiting for them; warehouse objects by id."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}
        self._waiters = {}
        self._dropped = set()           # ids of warehouse objects dropped on this rank
        self._puts = 0
        # A worker holding a million results kept by their callers' proxies would otherwise
        # have every full collection walk them all (bench/README.md, "Flat with queue depth").
        self.stored = QueuedCalls()

    def put(self, task_id, entry):
        """Store ``entry`` and run the callbacks waiting for it (on this thread)."""
        with self._lock:
            self._entries[task_id] = entry
            waiters = self._waiters.pop(task_id, ())
            self._puts += 1
            self.stored.submitted(self._puts, len(self._entries))
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
            if self.stored.frozen and len(self._entries) < self.stored.step // 2:
                self.stored.drained()

    # -- warehouse objects -------------------------------------------------------------------------

    def add_object(self, object_id, entry):
        """Store a warehouse object's ``entry`` under a fresh id (write-once).

        Parameters
        ----------
        object_id : int
            Its id.
        entry : Entry
            The value (or, for a copy that could not be unpickled, the error).

        Returns
        -------
        bool
            ``False`` (nothing stored) if the id was dropped here already.

        Raises
        ------
        RuntimeError
            If something is already stored under ``object_id``.
        """
        with self._lock:
            if object_id in self._entries:
                raise RuntimeError(f'warehouse id {object_id} is taken: entries are write-once')
            if object_id in self._dropped:
                return False
            self._entries[object_id] = entry
            return True

    def find(self, object_id):
        """The entry stored under ``object_id`` now, or ``None`` (never waits)."""
        return self._entries.get(object_id)

    def forget(self, object_id):
        """Drop warehouse object ``object_id`` here, for good (idempotent).

        Returns
        -------
        bool
            Whether a value (or copy) was stored here.
        """
        with self._lock:
            self._dropped.add(object_id)
            return self._entries.pop(object_id, None) is not None

    def dropped(self, object_id):
        """bool: whether warehouse object ``object_id`` was dropped on this rank."""
        return object_id in self._dropped

    def __len__(self):
        return len(self._entries)

    def __contains__(self, task_id):
        return task_id in self._entries
