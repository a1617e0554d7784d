"""Distributed reference counting of results and tesserae: the owner/borrower bookkeeping.

Plain state changed by events (events in, messages out; no MPI, no threads, no clock), as
``distributed/worker_state_machine.py`` does: :class:`Borrowers` is fed what happens on its rank
and answers with the updates to send and the objects to free. ``runtime/refcounts.py`` drives it.

The scheme is Ray's ownership model (Wang et al., "Ownership: a distributed futures system for
fine-grained tasks", NSDI 2021), cut down to what a runtime without task re-execution needs:

* The **owner** of a result or a tessera is the rank that submitted it (its id names that rank,
  ``id_rank(uid)``); the value itself lives on a worker (``where``). The owner alone decides when
  to free it: when no proxy of it is left on the owner (``local``), no other rank borrows it
  (``borrowers``) and no reference to it is in flight (``tokens``).
* A reference pickled anywhere is a **token** in flight, counted per sending rank (the *lender*,
  which the pickle names). On the owner the count goes up at once; a borrower that pickles
  tells the owner (``LENT``). The rank that unpickles it consumes the lender's token: its first
  proxy registers it as a borrower in the same update (``GOT_FIRST``), later ones only consume
  (``GOT``).
* A borrower whose last proxy goes tells the owner (``GONE``) and forgets the reference.

Why it is safe: a rank's updates reach the owner in the order sent (one ordered channel per pair
of ranks), so a borrower's ``LENT`` arrives after its own registration and before its ``GONE``.
A consumption may overtake the ``LENT`` it matches: the lender's count is then negative, which
keeps the object (counts per lender never cancel each other out). Once a lender is no longer
registered, all its ``LENT`` have arrived and its count is exactly its tokens not yet consumed;
a lender whose registration has not arrived yet holds a token of its own lender, and so on back
to the owner, whose own tokens are counted at once. So ``local == 0``, no borrower and every
lender's count 0 together mean that no rank holds or can still receive a reference (checked by
the randomised test in ``tests/test_borrowers_units.py``).

A reference that is pickled but never unpickled (user code pickling a proxy to a file, a message
to a rank that died) keeps its object for the rest of the run: a leak, never an early free.
"""

__all__ = ['Borrowers', 'TASK', 'TESSERA', 'GOT_FIRST', 'GOT', 'LENT', 'GONE', 'BORROW']

TASK = 0            #: kind of a task's result (freed on ``where`` with a Drop of its id)
TESSERA = 1         #: kind of a tessera (destroyed on ``where`` after its queued calls)

# Updates a rank sends an owner, as (op, uid, where) triples; ``op`` is
# ``base | kind << 3 | lender << 4`` (the lender: whose token a GOT_FIRST or GOT consumes).
GOT_FIRST = 0       #: the sender received a reference (consumed its token) and now borrows it
GOT = 1             #: the sender received one more reference to something it borrows already
LENT = 2            #: the sender pickled a reference it borrows: one more token in flight
GONE = 3            #: the sender's last proxy went: it borrows no more
BORROW = 4          #: like GOT_FIRST, for a reference that travelled without a token

_NAMES = {GOT_FIRST: 'GOT_FIRST', GOT: 'GOT', LENT: 'LENT', GONE: 'GONE', BORROW: 'BORROW'}


def _owner(uid):
    return uid >> 40            # messages.id_rank, without the import (this module stands alone)


class Ref:
    """What one rank knows about one reference (plain record)."""

    __slots__ = ('kind', 'where', 'local', 'tokens', 'borrowers')

    def __init__(self, kind, where, local):
        self.kind = kind
        self.where = where
        self.local = local          # proxies of it alive on this rank
        self.tokens = {}            # owner only: lender -> references in flight it sent
        self.borrowers = set()      # owner only: other ranks holding proxies of it

    def __repr__(self):
        return (f'Ref(kind={self.kind}, where={self.where}, local={self.local}, '
                f'tokens={self.tokens}, borrowers={sorted(self.borrowers)})')


class Borrowers:
    """The reference counts one rank keeps: as owner of what it submitted, as borrower of the rest.

    Only references that were pickled at least once have an entry: a proxy that never leaves its
    owner is freed when it goes, as before (``released`` of an unknown id frees it).

    Parameters
    ----------
    rank : int
        This rank.

    Attributes
    ----------
    refs : dict
        uid -> :class:`Ref`.
    outbox : dict
        owner rank -> list of ``(op, uid, where)`` updates to send it, in order.
    frees : list
        ``(kind, uid, where)`` of objects this rank owns that nobody refers to any more.
    """

    def __init__(self, rank):
        self.rank = rank
        self.refs = {}
        self.outbox = {}
        self.frees = []
        self.lost = set()

    # -- events of this rank ----------------------------------------------------------------------

    def pickled(self, uid, kind, where):
        """A proxy of ``uid`` alive on this rank was pickled (a reference is in flight, lent
        by this rank: the pickle names it)."""
        owner = _owner(uid)
        ref = self.refs.get(uid)
        if ref is None:             # the owner's own proxy, shared for the first time
            ref = self.refs[uid] = Ref(kind, where, 1)
        if owner == self.rank:
            _count(ref.tokens, self.rank, 1)
        else:
            self._send(owner, LENT, ref.kind, uid, ref.where)

    def unpickled(self, uid, kind, where, lender=-1):
        """A proxy of ``uid`` was rebuilt here; ``lender``: the rank whose token it consumes
        (-1: it travelled without one)."""
        owner = _owner(uid)
        ref = self.refs.get(uid)
        if owner == self.rank:      # back home: a local proxy like the owner's own
            if ref is None:         # nothing in flight was known: it was freed already
                self.refs[uid] = Ref(kind, where, 1)
                return
            ref.local += 1
            if lender >= 0:
                _count(ref.tokens, lender, -1)
            return
        if owner in self.lost:
            return
        if ref is None:
            self.refs[uid] = Ref(kind, where, 1)
            if lender >= 0:
                self._send(owner, GOT_FIRST, kind, uid, where, lender)
            else:
                self._send(owner, BORROW, kind, uid, where)
            return
        ref.local += 1
        if lender >= 0:
            self._send(owner, GOT, kind, uid, where, lender)

    def pinned(self, uid, kind, where):
        """One more local hold on ``uid`` that is not a proxy (a call in flight on a borrowed
        tessera: the tessera must outlive it); undone by :meth:`released`."""
        ref = self.refs.get(uid)
        if ref is not None:
            ref.local += 1
        elif _owner(uid) == self.rank:
            self.refs[uid] = Ref(kind, where, 1)
        else:
            self.unpickled(uid, kind, where)

    def released(self, uid, kind, where):
        """A proxy (or pin) of ``uid`` on this rank went away."""
        owner = _owner(uid)
        ref = self.refs.get(uid)
        if ref is None:
            if owner == self.rank:          # never shared: free it now
                self.frees.append((kind, uid, where))
            return
        ref.local -= 1
        if ref.local > 0:
            return
        if owner == self.rank:
            self._check(uid, ref)
        else:
            del self.refs[uid]
            self._send(owner, GONE, ref.kind, uid, ref.where)

    def worker_lost(self, rank):
        """Rank ``rank`` is gone: its borrows end, and nothing more is sent to it."""
        self.lost.add(rank)
        self.outbox.pop(rank, None)
        for uid, ref in list(self.refs.items()):
            owner = _owner(uid)
            if owner == rank:               # borrowed from it: nobody to tell
                del self.refs[uid]
            elif owner == self.rank and (rank in ref.borrowers or rank in ref.tokens):
                ref.borrowers.discard(rank)
                ref.tokens.pop(rank, None)      # what it lent is counted by its receivers
                self._check(uid, ref)

    # -- messages from other ranks ----------------------------------------------------------------

    def on_updates(self, source, updates):
        """Apply the ``(op, uid, where)`` updates (a flat tuple) rank ``source`` sent this owner.

        Raises
        ------
        ValueError
            If an update names an id this rank does not own, or an unknown op.
        """
        if source in self.lost:
            return
        for i in range(0, len(updates), 3):
            code, uid, where = updates[i], updates[i + 1], updates[i + 2]
            op, kind, lender = code & 7, (code >> 3) & 1, code >> 4
            if _owner(uid) != self.rank:
                raise ValueError(f'reference update {_NAMES.get(op, op)} for {uid} sent to '
                                 f'rank {self.rank}, which does not own it')
            ref = self.refs.get(uid)
            if ref is None:         # freed already: only a stale update can get here
                ref = self.refs[uid] = Ref(kind, where, 0)
            if lender in self.lost and op in (GOT_FIRST, GOT):
                op = BORROW if op == GOT_FIRST else None    # the lost lender's count is gone
            if op == GOT_FIRST:
                ref.borrowers.add(source)
                _count(ref.tokens, lender, -1)
            elif op == GOT:
                _count(ref.tokens, lender, -1)
            elif op is None:
                pass
            elif op == LENT:
                _count(ref.tokens, source, 1)
            elif op == GONE:
                ref.borrowers.discard(source)
            elif op == BORROW:
                ref.borrowers.add(source)
            else:
                raise ValueError(f'unknown reference update {op}')
            self._check(uid, ref)

    # -- outputs -----------------------------------------------------------------------------------

    def take_messages(self):
        """dict: owner rank -> flat tuple of updates for it (and forget them)."""
        outbox, self.outbox = self.outbox, {}
        return {owner: tuple(updates) for owner, updates in outbox.items()}

    def take_frees(self):
        """list of ``(kind, uid, where)`` to free (and forget them)."""
        frees, self.frees = self.frees, []
        return frees

    def _send(self, owner, op, kind, uid, where, lender=0):
        if owner in self.lost:
            return
        updates = self.outbox.get(owner)
        if updates is None:
            updates = self.outbox[owner] = []
        updates += (op | kind << 3 | lender << 4, uid, where)

    def _check(self, uid, ref):
        if ref.local <= 0 and not ref.tokens and not ref.borrowers:
            del self.refs[uid]
            self.frees.append((ref.kind, uid, ref.where))


def _count(tokens, lender, step):
    n = tokens.get(lender, 0) + step
    if n:
        tokens[lender] = n
    else:
        del tokens[lender]
