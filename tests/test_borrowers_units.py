"""The owner/borrower protocol (mosaic_mpi/runtime/borrowers.py), without MPI: event sequences.

A small simulated network stands for MPI: reference updates between two ranks arrive in the
order sent (one FIFO channel per ordered pair, as the transport guarantees), while the messages
that carry pickled proxies may arrive in any order. Rank 0 owns the reference unless said.
"""

import collections

from hypothesis import given, settings, strategies as st

from mosaic_mpi.messages import make_id
from mosaic_mpi.runtime.borrowers import (Borrowers, BORROW, GONE, GOT, GOT_FIRST, LENT, TASK,
                                          TESSERA)

UID = make_id(0, 7)         # a result submitted by rank 0, stored on worker 1
WHERE = 1


class Net:
    """Three (or more) ranks' state machines and the updates travelling between them."""

    def __init__(self, ranks=3, uid=UID, kind=TASK):
        self.uid, self.kind = uid, kind
        self.m = {r: Borrowers(r) for r in range(ranks)}
        self.channels = collections.defaultdict(collections.deque)     # (src, dst) -> batches
        self.frees = []

    def pump(self, rank):
        """Move ``rank``'s outputs onto the channels (its progress cycle)."""
        for owner, updates in self.m[rank].take_messages().items():
            self.channels[(rank, owner)].append(updates)
        self.frees += self.m[rank].take_frees()

    def pickle(self, rank):
        self.m[rank].pickled(self.uid, self.kind, WHERE)
        self.pump(rank)

    def unpickle(self, rank, lender=0):
        """A proxy lent by ``lender`` (-1: uncounted) is rebuilt on ``rank``."""
        self.m[rank].unpickled(self.uid, self.kind, WHERE, lender)
        self.pump(rank)

    def release(self, rank):
        self.m[rank].released(self.uid, self.kind, WHERE)
        self.pump(rank)

    def deliver_one(self, src, dst):
        """Deliver the oldest batch of updates from ``src`` to ``dst``."""
        updates = self.channels[(src, dst)].popleft()
        self.m[dst].on_updates(src, updates)
        self.pump(dst)

    def deliver(self, src, dst):
        """Deliver every batch waiting from ``src`` to ``dst``."""
        while self.channels[(src, dst)]:
            self.deliver_one(src, dst)

    def deliver_all(self):
        while any(self.channels.values()):
            for src, dst in list(self.channels):
                self.deliver(src, dst)

    def ops(self, src, dst):
        """The ops waiting on the channel ``src`` -> ``dst``, oldest first."""
        return [u[i] & 7 for u in self.channels[(src, dst)] for i in range(0, len(u), 3)]


def test_a_reference_never_shared_is_freed_when_its_proxy_goes():
    net = Net()
    net.release(0)
    assert net.frees == [(TASK, UID, WHERE)]
    assert not net.m[0].refs and not any(net.channels.values())


def test_the_owner_dropping_while_a_reference_is_in_flight_keeps_it():
    # t = a.f(big); u = b.g([t]); del t   (b is rank 2)
    net = Net()
    net.pickle(0)
    net.release(0)
    assert net.frees == []                      # the token keeps it
    net.unpickle(2)
    assert net.ops(2, 0) == [GOT_FIRST]
    net.deliver(2, 0)
    assert net.frees == [] and net.m[0].refs[UID].borrowers == {2}
    net.release(2)
    assert net.ops(2, 0) == [GONE] and UID not in net.m[2].refs
    net.deliver(2, 0)
    assert net.frees == [(TASK, UID, WHERE)] and not net.m[0].refs


def test_a_borrower_forwarding_and_dropping_before_the_consumer_registers():
    # owner 0 -> borrower 1 -> consumer 2; 1 drops its proxy before 2 has registered
    net = Net()
    net.pickle(0)
    net.release(0)
    net.unpickle(1)
    net.deliver(1, 0)                           # 1 borrows
    net.pickle(1)                               # 1 sends it on to 2
    net.release(1)                              # and drops its own
    assert net.ops(1, 0) == [LENT, GONE]        # in that order, on one channel
    net.deliver(1, 0)
    assert net.frees == [] and net.m[0].refs[UID].tokens == {1: 1}   # 2's token is still out
    net.unpickle(2, lender=1)
    net.deliver(2, 0)
    assert net.frees == [] and net.m[0].refs[UID].borrowers == {2}
    net.release(2)
    net.deliver(2, 0)
    assert net.frees == [(TASK, UID, WHERE)]


def test_the_consumer_registering_before_the_forwarders_lent_arrives():
    net = Net()
    net.pickle(0)
    net.release(0)
    net.unpickle(1)
    net.deliver(1, 0)
    net.pickle(1)
    net.release(1)
    net.unpickle(2, lender=1)
    net.deliver(2, 0)                           # GOT_FIRST overtakes 1's LENT
    ref = net.m[0].refs[UID]
    assert ref.tokens == {1: -1} and ref.borrowers == {1, 2} and net.frees == []
    net.release(2)
    net.deliver(2, 0)                           # 2 gone, but 1 (and its LENT) still counts
    assert net.frees == []
    net.deliver(1, 0)                           # LENT, GONE
    assert net.frees == [(TASK, UID, WHERE)]


def test_a_borrower_that_receives_twice_registers_once_and_reports_each_token():
    net = Net()
    net.pickle(0)
    net.pickle(0)
    net.unpickle(1)
    net.unpickle(1)
    assert net.ops(1, 0) == [GOT_FIRST, GOT]
    net.deliver(1, 0)
    net.release(0)
    net.release(1)
    assert net.ops(1, 0) == []                  # one proxy left on 1
    net.release(1)
    net.deliver(1, 0)
    assert net.frees == [(TASK, UID, WHERE)]


def test_a_borrower_that_drops_and_receives_again_borrows_again():
    net = Net()
    net.pickle(0)
    net.pickle(0)
    net.unpickle(1)
    net.release(1)
    net.unpickle(1)                             # the second copy arrives after the first went
    assert net.ops(1, 0) == [GOT_FIRST, GONE, GOT_FIRST]
    net.release(0)
    net.deliver_all()
    assert net.frees == [] and net.m[0].refs[UID].borrowers == {1}
    net.release(1)
    net.deliver_all()
    assert net.frees == [(TASK, UID, WHERE)]


def test_a_reference_coming_home_counts_as_a_local_proxy():
    net = Net()
    net.pickle(0)
    net.unpickle(1)
    net.pickle(1)                               # returned to its owner
    net.unpickle(0, lender=1)
    net.release(0)                              # the owner's own proxy
    net.release(1)
    net.deliver_all()
    assert net.frees == []                      # the proxy that came home is alive
    net.release(0)
    assert net.frees == [(TASK, UID, WHERE)]


def test_a_lost_borrower_releases_its_borrows():
    net = Net()
    net.pickle(0)
    net.release(0)
    net.unpickle(2)
    net.deliver(2, 0)
    assert net.frees == []
    net.m[0].worker_lost(2)
    net.pump(0)
    assert net.frees == [(TASK, UID, WHERE)]
    net.m[0].on_updates(2, (GONE, UID, WHERE))      # a late word from the dead: ignored
    assert net.m[0].take_frees() == []


def test_a_borrower_of_a_lost_owner_forgets_and_sends_nothing():
    uid = make_id(2, 5)                         # owned by worker 2
    net = Net(uid=uid)
    net.unpickle(1)
    net.channels.clear()
    net.m[1].worker_lost(2)
    assert uid not in net.m[1].refs
    net.release(1)
    net.unpickle(1)
    assert not any(net.channels.values()) and net.frees == []


def test_a_tessera_pinned_by_a_call_outlives_its_proxy():
    uid = make_id(0, 9)
    net = Net(uid=uid, kind=TESSERA)
    net.pickle(0)
    net.release(0)
    net.unpickle(1)
    net.m[1].pinned(uid, TESSERA, WHERE)        # a call from 1 on the borrowed tessera
    net.release(1)                              # the proxy goes, the call is in flight
    net.deliver_all()
    assert net.frees == []
    net.release(1)                              # the call finished
    net.deliver_all()
    assert net.frees == [(TESSERA, uid, WHERE)]


def test_an_uncounted_reference_registers_without_a_token():
    net = Net()
    net.unpickle(1, lender=-1)
    assert net.ops(1, 0) == [BORROW]
    net.deliver_all()
    net.release(0)
    assert net.frees == []
    net.release(1)
    net.deliver_all()
    assert net.frees == [(TASK, UID, WHERE)]


def test_a_consumer_registering_before_its_lender_is_registered():
    # 0 -> 1 -> 2: 2's registration and 2's GONE arrive before anything from 1
    net = Net()
    net.pickle(0)
    net.release(0)
    net.unpickle(1)
    net.pickle(1)
    net.unpickle(2, lender=1)
    net.release(2)
    net.deliver(2, 0)
    assert net.frees == [] and net.m[0].refs[UID].tokens == {0: 1, 1: -1}
    net.deliver(1, 0)                           # GOT_FIRST from 0's token, then LENT
    assert net.frees == [] and net.m[0].refs[UID].borrowers == {1}
    net.release(1)
    net.deliver(1, 0)
    assert net.frees == [(TASK, UID, WHERE)]


def test_an_update_for_an_id_the_rank_does_not_own_is_refused():
    machine = Borrowers(1)
    try:
        machine.on_updates(2, (GOT_FIRST, UID, WHERE))
    except ValueError as error:
        assert 'does not own it' in str(error)
    else:
        raise AssertionError('accepted')


# -- any order the network allows ------------------------------------------------------------------

_ACTIONS = st.lists(st.tuples(st.sampled_from(['send', 'arrive', 'drop', 'deliver']),
                              st.integers(0, 2), st.integers(0, 2), st.integers(0, 30)),
                    max_size=60)


@settings(max_examples=400, deadline=None)
@given(_ACTIONS)
def test_never_freed_while_held_or_in_flight_and_freed_once_in_the_end(actions):
    net = Net()
    held = {0: 1, 1: 0, 2: 0}           # live proxies per rank: the owner's own to start with
    flying = []                         # (to, lender) of pickled proxies not yet unpickled

    def check():
        if net.frees:
            assert not flying and not any(held.values()), (net.frees, held, flying)

    for action, a, b, pick in actions:
        if action == 'send' and held[a] and a != b:
            net.pickle(a)
            flying.append((b, a))
        elif action == 'arrive' and flying:
            rank, lender = flying.pop(pick % len(flying))
            net.unpickle(rank, lender)
            held[rank] += 1
        elif action == 'drop' and held[a]:
            held[a] -= 1
            net.release(a)
        elif action == 'deliver' and net.channels[(a, b)]:
            net.deliver_one(a, b)
        check()
    # the rest of the run: every proxy arrives, then goes; every update is delivered
    for rank, lender in flying:
        net.unpickle(rank, lender)
        held[rank] += 1
        check()
    flying.clear()
    for rank in held:
        while held[rank]:
            held[rank] -= 1
            net.release(rank)
            check()
    net.deliver_all()
    assert net.frees == [(TASK, UID, WHERE)]
    assert all(not m.refs for m in net.m.values())
