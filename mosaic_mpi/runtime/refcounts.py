"""Drives this rank's :class:`~mosaic_mpi.runtime.borrowers.Borrowers` from any thread.

Proxies are pickled, unpickled and garbage collected on any thread (user threads, the worker
loop, finalisers at arbitrary points). Those events are appended to a deque (atomic, no lock, so
a finaliser that runs inside another event cannot deadlock) and applied in order in a progress
cycle, where the rank's records are handled too: the state machine is only ever touched there.
The updates it produces leave as one :class:`~mosaic_mpi.messages.Refs` per owner per cycle
(batched), frees go to the client, which batches them into Drops as before.
"""

import collections

from ..core.references import counting, record
from ..messages import Refs, id_run
from .borrowers import Borrowers, TASK, TESSERA

__all__ = ['RefCounts', 'TASK', 'TESSERA']

_PICKLED, _UNPICKLED, _RELEASED, _PINNED, _LOST = range(5)


class RefCounts:
    """Reference counts of this rank: events from any thread, applied in progress cycles.

    Parameters
    ----------
    rank : int
        This rank.
    run : int
        The run whose ids are counted (proxies of earlier runs are not).
    transport : Transport
        Where updates go.
    on_free : callable
        ``on_free(kind, uid, where)``, in a progress cycle: this rank owns ``uid`` and nobody
        refers to it any more.
    """

    def __init__(self, rank, run, transport, on_free):
        self.machine = Borrowers(rank)
        self.run = run
        self._transport = transport
        self._on_free = on_free
        self._events = collections.deque()
        self._scheduled = False
        self.closed = False
        self.sent = 0               # updates sent so far
        self.received = 0           # updates received so far (bench/soak.py reports it)

    # -- any thread --------------------------------------------------------------------------------

    def pickled(self, uid, kind, where):
        """A proxy of ``uid`` is being pickled here.

        Returns
        -------
        int
            The lender the pickle names (this rank): the reference travels with a token; -1
            for uncounted pickles, stopped runtimes and ids of another run.
        """
        if self.closed or id_run(uid) != self.run or not counting():
            return -1
        record(uid, kind, where)
        self._note((_PICKLED, uid, kind, where))
        return self.machine.rank

    def unpickled(self, uid, kind, where, lender):
        """A proxy of ``uid`` was rebuilt here; ``lender`` is what :meth:`pickled` returned
        on the sending rank.

        Returns
        -------
        bool
            Whether it is counted (its release must be reported with :meth:`released`).
        """
        if self.closed or id_run(uid) != self.run:
            return False
        if lender is True or lender is False:       # (a pickle without a lender)
            lender = -1
        self._note((_UNPICKLED, uid, kind, where, lender))
        return True

    def released(self, uid, kind, where):
        """A counted proxy (or a pin) of ``uid`` went away."""
        if not self.closed:
            self._note((_RELEASED, uid, kind, where))

    def pinned(self, uid, kind, where):
        """Hold ``uid`` without a proxy (undo with :meth:`released`)."""
        if not self.closed:
            self._note((_PINNED, uid, kind, where))

    def lost(self, rank):
        """Rank ``rank`` is gone: end its borrows."""
        self._note((_LOST, rank, 0, 0))

    def _note(self, event):
        self._events.append(event)
        if not self._scheduled:
            self._scheduled = True
            self._transport.call_soon(self.flush)

    # -- progress cycles ---------------------------------------------------------------------------

    def flush(self):
        """Apply the events so far and send what they produced (cheap when there are none)."""
        self._scheduled = False
        events = self._events
        if not events:
            return
        machine = self.machine
        pop = events.popleft
        while events:
            event = pop()
            what, uid, kind, where = event[:4]
            if what == _RELEASED:
                machine.released(uid, kind, where)
            elif what == _PICKLED:
                machine.pickled(uid, kind, where)
            elif what == _UNPICKLED:
                machine.unpickled(uid, kind, where, event[4])
            elif what == _PINNED:
                machine.pinned(uid, kind, where)
            else:
                machine.worker_lost(uid)
        self._emit()

    def release_owned(self, uid, kind, where):
        """The owner's own proxy of ``uid`` went away (in a cycle).

        Returns
        -------
        bool
            ``True`` if ``uid`` was never shared: the caller frees it as before. Otherwise the
            counts decide (and call ``on_free`` when it is time).
        """
        if self._events:
            self.flush()
        if uid not in self.machine.refs:
            return True
        self.machine.released(uid, kind, where)
        self._emit()
        return False

    def on_refs(self, source, record):
        """Updates from a rank that borrows what this rank owns (in a cycle)."""
        if self._events:
            self.flush()
        self.received += len(record.updates) // 3
        self.machine.on_updates(source, record.updates)
        self._emit()

    def close(self):
        """The run is over: count nothing more, send nothing more."""
        self.closed = True
        self._events.clear()

    def _emit(self):
        machine = self.machine
        if machine.outbox:
            for owner, updates in machine.take_messages().items():
                if not self.closed:
                    self.sent += len(updates) // 3
                    self._transport.send(owner, Refs(updates))
        if machine.frees:
            for kind, uid, where in machine.take_frees():
                self._on_free(kind, uid, where)
