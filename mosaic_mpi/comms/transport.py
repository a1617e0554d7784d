"""Point-to-point transport over MPI, driven by one progress thread per rank.

The packets themselves (wire format, matched probes, chunking, order) are :mod:`.wire`'s.

Progress. The progress thread drives MPI: each cycle it sends what the rank's threads queued
(several records to one destination become one packet), probes and receives, tests requests, and
hands complete packets to the runtime's handler. While any request is in flight it never sleeps
(MPICH moves a large message only while some thread is inside MPI); after the last activity it
keeps polling for ``spin_time`` seconds, yielding the core between polls, and then sleeps with
exponential back-off: up to 200 us during the first 50 ms, up to ``max_sleep`` after. It wakes at
once when the rank queues a send.

Assisted progress. Every cycle runs under one lock, so MPI is only ever driven by one thread at a
time. An event loop that runs out of work within ``spin_time`` of the last message runs the cycles
itself (:meth:`Transport.assist`, called by :mod:`mosaic_mpi.runtime.loop`'s selector) instead of
blocking in ``epoll``, while the progress thread stands aside, parked, not competing for the GIL.
Replies then reach the loop and resolve its futures with no thread hand-off, and what the loop
queues right after such a window goes out at its next wait, in one packet (or at once, from
:meth:`Transport.flush_now`, when the loop has nothing else to run first). A hand-off between two
Python threads costs a GIL transfer and a wake-up (15-50 us each on a 2-core VM; a round trip
had four): removing them took a round trip from ~200 us to ~50 us.

The progress thread takes over whenever the loop's thread may be away for long: at once if a
transfer is in flight when the window ends, or when the window ended idle; when that thread
queues a send more than 200 us after its window (it is running user code); and otherwise after
at most ``max_sleep`` (a record queued just before the loop blocked in user code waits that long).
Its housekeeping (batched frees, :meth:`Transport.add_idle_hook`) runs before it sleeps.
"""

import collections
import logging
import os
import signal
import sys
import threading
import time
import traceback

from .liveness import Liveness
from .wire import STOP_SIGNALS, Wire, abort_world

__all__ = ['Transport']

TAG_HEADER = 17
TAG_DATA = 18
_MAX_RECORDS = 1024
_FIRST_SLEEP = 2e-5     # first back-off sleep after the spin, s; doubles up to max_sleep
_RECENT = 0.05          # for this long after the last message (s), sleeps stay short:
_RECENT_SLEEP = 2e-4    # at most this long (s)
_PR_SET_TIMERSLACK = 29
_BUSY_CYCLE = 2e-4      # s: a busy loop runs a cycle itself when none ran for this long
_STALLED = 2e-3         # s: ... and waits for the lock if none ran for this long
_BUSY_HOOKS = 2e-3      # s: busy hooks run at least this often while the progress thread works
_DEFER = 2e-4          # s: a loop that left an assist() window this recently sends its own records


def _reduce_timer_slack(nanoseconds=1000):
    """Make this thread's short sleeps last what they ask for (Linux pads them by 50 us)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0)
    except (OSError, AttributeError):       # not Linux: keep the default slack
        pass

_log = logging.getLogger(__name__)


class Transport:
    """A rank's endpoint: queue records for other ranks, receive theirs on a handler.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Communicator to use; the transport duplicates it, so its messages never mix with the
        application's.
    handler : callable
        ``handler(batch)`` with ``batch`` a list of ``(source_rank, record)``, called on the progress
        thread once per cycle that received something. It must not block.
    max_chunk : int
        Largest MPI message in bytes.
    spin_time, max_sleep : float
        Idle back-off, in seconds (see the module docstring).
    buffer_pool : int
        Most bytes of freed large receive buffers kept for reuse (see :mod:`.pool`).
    on_fatal : callable, optional
        Called with the message (headed by the rank, with the traceback) if the progress thread
        fails; it must print it and end the job (also settable later as the ``on_fatal``
        attribute). By default the message goes to stderr and the job is aborted with
        ``MPI_Abort``.
    """

    def __init__(self, comm, handler, max_chunk=64 << 20, spin_time=0.001, max_sleep=0.01,
                 buffer_pool=512 << 20, on_fatal=None):
        self._wire = wire = Wire(comm, max_chunk, buffer_pool)
        self.comm = wire.comm
        self.rank = wire.rank
        self.size = wire.size
        self.pool = wire.pool
        self._handler = handler
        self._spin_time = spin_time
        self._max_sleep = max_sleep
        self.on_fatal = on_fatal
        self._outbox = collections.deque()
        self._wake = threading.Event()
        self._sleeping = False          # the progress thread is parked on _wake
        self._standing_aside = False    # ... because a loop thread drives progress (assist)
        self._closing = False
        self._failed = False
        self._lock = threading.Lock()   # held for every progress cycle, by whichever thread
        self._driver = None             # ident of the thread holding _lock
        self._guest = None              # ident of the thread inside assist()
        self._guest_left = 0.0          # when the last assist() window ended with work to do
        self._assistant = None          # ident of the thread whose loop calls assist()
        self._last_activity = time.monotonic()
        self._last_cycle = self._last_activity     # when a progress cycle last started
        self._idle_hooks = []
        self._busy_hooks = []
        self._batch = []
        self._liveness = None
        self._peers_due = 0.0           # when the liveness check has something to do next
        self._on_lost = None
        self._beat = None
        self._thread = threading.Thread(target=self._run, name=f'mosaic-progress-r{self.rank}',
                                        daemon=True)

    # -- any thread ------------------------------------------------------------------------------

    def start(self):
        """Start the progress thread."""
        self._thread.start()

    def send(self, dest, record):
        """Queue ``record`` for rank ``dest``; returns at once.

        Records queued for one destination arrive there in the order they were queued.
        """
        self._outbox.append((dest, record))
        ident = threading.get_ident()
        if ident == self._driver or ident == self._guest:
            return                      # this thread is in a cycle: it sends before it leaves
        if not self._sleeping:
            return                      # the progress thread is awake: its next cycle sends it
        if ident == self._assistant:
            if self._standing_aside:
                if time.monotonic() - self._guest_left < _DEFER:
                    # Its loop has just left an assist() window: it sends this when it next
                    # waits, batched with what else it queues until then.
                    return
                # Its loop has been busy for a while (user code): the progress thread takes over.
                self._wake.set()
                return
            # The progress thread is in its idle back-off: send now, from here (and the loop
            # then spins for the answer in its next wait, see assist).
            if self._flush_here(ident):
                return
        if self._sleeping:
            self._wake.set()

    def flush_now(self):
        """The calling loop thread has nothing left to do before it waits: send what is queued
        now, from here, rather than at that wait (which would send the same records, later).

        Only for the assisting loop's thread while the progress thread stands aside (otherwise
        :meth:`send` has already handed the records on); a no-op if another thread is in a cycle.
        """
        if self._outbox and self._standing_aside:
            ident = threading.get_ident()
            if ident == self._assistant and self._guest is None:
                self._flush_here(ident)

    def _drive(self, ident, fn, wait=False):
        """Run ``fn()`` under the progress lock on this thread: ``(True, its value)``, or
        ``(False, None)`` if another thread holds the lock and ``wait`` is false."""
        if not self._lock.acquire(wait):
            return False, None
        try:
            self._driver = ident
            return True, fn()
        except Exception:
            self._fatal(traceback.format_exc())
            raise
        finally:
            self._driver = None
            self._lock.release()

    def _cycle_here(self, ident, wait):
        """One progress cycle on this thread (``wait``: even if it must wait for the lock).

        Returns whether records were handed to the handler.
        """
        ran, outcome = self._drive(ident, self._cycle, wait)
        if not ran:
            return False
        if self._sleeping and (self._wire.large or self._outbox or self._batch):
            self._wake.set()
        return outcome[1]

    def _flush_here(self, ident):
        """Send what is queued from this thread if no cycle is running; whether it did."""
        ran, _ = self._drive(ident, self._flush_outbox)
        if not ran:
            return False
        self._last_activity = time.monotonic()
        if (self._wire.large or self._batch) and self._sleeping:
            # a transfer that needs progress, or records to this rank to hand on: hand it over
            self._wake.set()
        return True

    def call_soon(self, fn, *args):
        """Run ``fn(*args)`` in a progress cycle, after the records queued before it have been
        handed to MPI (not urgent; what it queues goes in a later packet).

        The progress thread is not woken for it while a loop thread is assisting: that thread's
        next cycle, or the progress thread within ``max_sleep``, runs it.
        """
        self._outbox.append((None, (fn, args)))
        if self._sleeping and not self._standing_aside:
            self._wake.set()

    def watch(self, peers, interval, timeout, beat, on_lost):
        """Send heartbeats to ``peers`` and report the ones that fall silent.

        Parameters
        ----------
        peers : list of int
            Ranks to watch.
        interval, timeout : float
            Seconds between heartbeats; seconds of silence after which a peer is lost.
        beat : record
            What a heartbeat is (a :class:`~mosaic_mpi.messages.Beat`).
        on_lost : callable
            ``on_lost(rank, silence)``, called once per lost peer in a progress cycle (it must
            not block).
        """
        self._beat = beat
        self._on_lost = on_lost
        self._liveness = Liveness(peers, interval, timeout, time.monotonic())
        self._peers_due = 0.0

    def unwatch(self, rank=None):
        """Stop watching ``rank`` (every peer if ``None``): it is stopping normally."""
        liveness = self._liveness
        if liveness is None:
            return
        if rank is None:
            self._liveness = None
        else:
            liveness.forget(rank)
    def broadcast(self, root, payload, sizes, make_record):
        """Post nonblocking broadcasts of out-of-band buffers (see :meth:`.wire.Wire.broadcast`).

        Only inside a progress cycle (a handler, or a function run by :meth:`call_soon`), on
        every rank, in the same order on every rank. The progress thread does not sleep until
        they complete; ``make_record``'s record then reaches the handler, as if from ``root``.
        """
        self._wire.broadcast(root, payload, sizes, make_record)

    def close(self, timeout=10.0):
        """Send what is queued, stop the progress thread and free the communicator.

        Parameters
        ----------
        timeout : float
            Seconds to wait for queued sends to complete.

        Returns
        -------
        bool
            ``True`` if everything queued was sent and the thread stopped in time.
        """
        self._closing = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        clean = not self._thread.is_alive()
        if clean:
            self._wire.free()
        return clean

    @property
    def bytes_sent(self):
        """int: bytes sent so far point to point, headers included."""
        return self._wire.bytes_sent

    @property
    def bytes_received(self):
        """int: bytes received so far, headers included."""
        return self._wire.bytes_received

    @property
    def bytes_broadcast(self):
        """int: bytes of the broadcasts this rank took part in (root or receiver)."""
        return self._wire.bytes_broadcast

    @property
    def packets_to_self(self):
        """int: packets this rank sent to itself through MPI (0: such records skip MPI)."""
        return self._wire.packets_to_self

    @property
    def local_packets(self):
        """int: packets this rank delivered to itself without MPI (calls between its
        tesserae, their completions and fetches)."""
        return self._wire.local_packets

    @property
    def alive(self):
        """bool: whether the progress thread is running."""
        return self._thread.is_alive()

    # -- progress thread ---------------------------------------------------------------------------

    def assist(self, timeout=None, check=None):
        """Drive progress from the calling thread instead of waiting (an idle event loop).

        Runs progress cycles on this thread while the progress thread stands aside, for as long
        as the rank has been active within the last ``spin_time`` seconds (never longer than
        ``timeout``), yielding the core between cycles. Returns as soon as a cycle hands records
        to the handler or ``check()`` is true. Records this thread queues in the next 200 us
        wait for its next call (which sends them first); with nothing to spin for it only sends.

        Parameters
        ----------
        timeout : float or None
            Longest time to spend, in seconds (``None``: no limit but ``spin_time``).
        check : callable, optional
            Called between cycles; a true result ends the window (the loop has other work).

        Returns
        -------
        bool
            Whether records were handed to the handler or ``check()`` was true: the caller has
            work, it should not block.
        """
        start = time.monotonic()
        end = self._last_activity + self._spin_time
        if timeout is not None:
            hard_end = start + timeout
            end = min(end, hard_end)
        else:
            hard_end = float('inf')
        ident = threading.get_ident()
        self._assistant = ident
        if start >= end or self._closing or self._guest is not None:
            # No window (the loop has work, or it is idle): one cycle here if this loop queued
            # something, or if no cycle ran lately. The progress thread may be starved of the
            # GIL by a loop that releases it more often than every 5 ms (CPython's switch
            # interval): then the loop's own iterations must keep MPI going.
            since = start - self._last_cycle
            if self._outbox or self._batch or since > _BUSY_CYCLE:
                return self._cycle_here(ident, wait=since > _STALLED)
            return False
        self._guest = ident
        worked = False
        spins = 0
        try:
            while True:
                ran, outcome = self._drive(ident, self._cycle)
                if ran:
                    busy, worked = outcome
                    if worked:
                        break
                    if busy:
                        end = min(self._last_activity + self._spin_time, hard_end)
                spins += 1
                if check is not None and not spins & 3 and check():     # every 4th: ~1 us each
                    worked = True
                    break
                now = time.monotonic()
                if now >= hard_end or (now >= end and not self._wire.large):
                    break
                os.sched_yield()
        finally:
            self._guest = None
            # Work to do here: this thread will likely be back soon, the progress thread keeps
            # standing aside. Idle: hand over to the progress thread's back-off.
            self._guest_left = time.monotonic() if worked else 0.0
            if self._sleeping and (not worked or self._wire.large or self._outbox
                                   or self._batch):
                self._wake.set()
        return worked

    def end_assist(self):
        """The assisting loop is closing: the progress thread alone drives progress from now."""
        self._assistant = None
        self._guest_left = 0.0
        if self._sleeping:
            self._wake.set()

    # -- progress thread ---------------------------------------------------------------------------

    def _run(self):
        # Signals go to the main thread: Ctrl-C must interrupt the user's code, not this loop.
        if hasattr(signal, 'pthread_sigmask'):
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self._loop()
        except BaseException:
            self._fatal(traceback.format_exc())

    def _fatal(self, text):
        if self._failed:                # reported where it happened (a cycle) already
            return
        self._failed = True
        _log.critical('progress of rank %d failed:\n%s', self.rank, text)
        message = f'mosaic_mpi: progress of rank {self.rank} failed:\n{text}'
        if self.on_fatal is not None:
            self.on_fatal(message)          # it prints the message, then ends the job
            return
        sys.stderr.write(message)
        sys.stderr.flush()
        abort_world(1)

    def _loop(self):
        _reduce_timer_slack()
        first_sleep = _FIRST_SLEEP
        sleep = first_sleep
        ident = threading.get_ident()
        woke = False
        seen_activity = self._last_activity
        busy_due = 0.0
        while True:
            if self._busy_hooks:
                now = time.monotonic()
                if now >= busy_due:
                    busy_due = now + _BUSY_HOOKS
                    self._drive(ident, self._call_busy_hooks)
            if self._stand_aside():
                self._run_idle_hooks()
                self._park(self._max_sleep, aside=True)
                sleep = first_sleep
                woke = True
                continue
            busy, _ = self._drive(ident, self._cycle, wait=True)[1]
            if busy:
                sleep = first_sleep
                continue
            if woke:
                # The first probe after a sleep can miss a message that arrived meanwhile (MPICH
                # over UCX: it may only start its progress), costing a whole further sleep.
                woke = False
                continue
            if self._wire.requests:
                os.sched_yield()  # a transfer is in flight: yield the core, never sleep
                continue
            if self._closing and not self._outbox and not self._batch:
                return
            idle = time.monotonic() - self._last_activity
            if idle < self._spin_time:
                # sched_yield, not time.sleep(0): the latter sleeps for the timer slack (~50 us)
                os.sched_yield()
                continue
            if self._last_activity != seen_activity:    # activity (maybe on another thread)
                seen_activity = self._last_activity
                sleep = first_sleep
            self._run_idle_hooks()
            self._park(sleep)
            woke = True
            # Recently active ranks stay quick to answer; long-idle ones sleep longer.
            sleep = min(2 * sleep, _RECENT_SLEEP if idle < _RECENT else self._max_sleep)

    def add_idle_hook(self, fn):
        """Run ``fn()`` in a progress cycle each time the progress thread is about to sleep.

        For housekeeping that can wait (batched frees); ``fn`` must be quick when it has nothing
        to do. What it queues is sent by the next cycle.
        """
        self._idle_hooks.append(fn)

    def add_busy_hook(self, fn):
        """Run ``fn()`` in a progress cycle before the progress thread sleeps (as an idle hook)
        and also at least every 2 ms while it is kept busy (a stream of records or a transfer
        in flight), for what must not wait for the rank to idle."""
        self._busy_hooks.append(fn)
        self._idle_hooks.append(fn)

    def _call_busy_hooks(self):
        for fn in self._busy_hooks:
            fn()

    def _run_idle_hooks(self):
        if self._idle_hooks:
            self._drive(threading.get_ident(), self._call_idle_hooks)

    def _call_idle_hooks(self):
        for fn in self._idle_hooks:
            fn()

    def _stand_aside(self):
        """Whether a loop thread is driving progress (or will be back within ``spin_time``)."""
        if self._closing:
            return False
        if self._guest is not None:
            return True
        if self._wire.large or self._outbox or self._batch:
            return False
        return time.monotonic() - self._guest_left < self._spin_time

    def _park(self, timeout, aside=False):
        self._standing_aside = aside
        self._sleeping = True
        if aside or (not self._outbox and not self._batch and not self._closing):
            self._wake.wait(timeout)
        self._sleeping = False
        self._standing_aside = False
        self._wake.clear()

    def _cycle(self):
        """One progress cycle (``_lock`` held): returns ``(busy, delivered)``."""
        self._last_cycle = time.monotonic()
        busy = False
        if self._outbox:
            self._flush_outbox()
            busy = True
        if self._wire.receive(self._batch):
            busy = True
        if self._wire.requests and self._wire.test(self._batch):
            busy = True
        if self._liveness is not None and self._last_cycle >= self._peers_due:
            self._check_peers()         # not every cycle: heartbeats are due every 0.5 s or so
        delivered = self._handle()
        if self._batch:                 # records to this rank left for the next cycle
            busy = True
        if busy:
            self._last_activity = time.monotonic()
        return busy, delivered

    def _handle(self, rounds=4):
        """Hand the batch to the handler, then send what it queued (``_lock`` held).

        Records the handler sends to this rank come back into the batch (:meth:`_send_packet`):
        they are handled here too, up to ``rounds`` times, the rest by the next cycle. Returns
        whether the handler ran.
        """
        delivered = False
        while self._batch and rounds:
            batch, self._batch = self._batch, []
            self._handler(batch)
            delivered = True
            rounds -= 1
            if self._outbox:            # what the handler queued (answers) goes out now
                self._flush_outbox()
        return delivered

    def _check_peers(self):
        liveness = self._liveness
        heard = self._wire.heard
        now = self._last_cycle
        if heard:
            for rank in heard:
                liveness.heard(rank, now)
            heard.clear()
        beat_to, lost = liveness.tick(now)
        for rank in beat_to:
            self._wire.send(rank, [self._beat])
        for rank, silence in lost:
            self._on_lost(rank, silence)
        self._peers_due = liveness.due

    def _flush_outbox(self):
        outbox = self._outbox
        if len(outbox) == 1 and outbox[0][0] is not None:     # the common case: one record
            dest, record = outbox.popleft()
            if dest == self.rank:
                self._wire.deliver_local([record], self._batch)
            else:
                self._wire.send(dest, [record])
            return
        per_dest = {}
        callbacks = []
        pop = outbox.popleft
        while outbox:
            dest, item = pop()
            if dest is None:
                # Bookkeeping (freed proxies): after this flush's packets, never splitting them
                # (one callback between two calls used to send each call in a packet of its own).
                callbacks.append(item)
                continue
            records = per_dest.get(dest)
            if records is None:
                per_dest[dest] = [item]
            else:
                records.append(item)
        for dest, records in per_dest.items():
            self._send_packet(dest, records)
        for fn, args in callbacks:
            fn(*args)

    def _send_packet(self, dest, records):
        if dest == self.rank:           # a call between tesserae of this rank: no MPI (see send)
            self._wire.deliver_local(records, self._batch)
            return
        if len(records) <= _MAX_RECORDS:
            self._wire.send(dest, records)
            return
        # Bounded packets: a burst of a million calls is not one giant header.
        for start in range(0, len(records), _MAX_RECORDS):
            self._wire.send(dest, records[start:start + _MAX_RECORDS])

