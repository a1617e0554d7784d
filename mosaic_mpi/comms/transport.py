"""Point-to-point transport over MPI, driven by one progress thread per rank.

Wire format. A *packet* from one rank to another is a header message (tag ``TAG_HEADER``) followed
by one message per out-of-band buffer chunk (tag ``TAG_DATA``). The header is::

    int64 n | int64 size[0] ... size[n-1] | pickle (protocol 5) of a list of records

The records' large buffers (numpy arrays, bytes) are kept out of the header pickle by its
``buffer_callback`` and sent with ``Isend`` straight from their memory, split into chunks of at most
``max_chunk`` bytes so that no count passes 2**31 - 1. The receiver finds headers with a *matched*
probe (``MPI_Improbe`` + ``MPI_Mrecv``), so concurrent senders can never have their headers taken by
the wrong receive, and posts ``Irecv`` for the chunks right away, into ``np.empty`` buffers (large ones
reused from a :class:`~.pool.BufferPool` once their arrays have been freed). MPI keeps
messages between one pair of ranks on one tag in order, and the receiver posts the chunk receives in
header order, so chunks always land in the packet they belong to. Packets from one source are
handed to the runtime in the order they were sent, even when a later packet completes first.

Tags are two constants: no counter can run past ``MPI_TAG_UB``.

Progress. Only the progress thread calls MPI after start-up. Each cycle it sends what the rank's
threads queued (several records to one destination become one packet), probes and receives, tests
requests, and hands complete packets to the runtime's handler. While any request is in flight it
never sleeps (MPICH moves a large message only while some thread is inside MPI); after the last
activity it keeps polling for ``spin_time`` seconds, yielding the core between polls, and then
sleeps with exponential back-off: up to 200 us during the first 50 ms, up to ``max_sleep`` after.
It wakes at once when the rank queues a send.
"""

import collections
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback

import numpy as np

from ..serialisation import pack_records, unpack_records
from .pool import BufferPool

__all__ = ['Transport', 'mpi_world', 'abort_world', 'TAG_HEADER', 'TAG_DATA']

TAG_HEADER = 17
TAG_DATA = 18
_MAX_RECORDS = 1024
_FIRST_SLEEP = 2e-5     # first back-off sleep after the spin, s; doubles up to max_sleep
_RECENT = 0.05          # for this long after the last message (s), sleeps stay short:
_RECENT_SLEEP = 2e-4    # at most this long (s)
_PR_SET_TIMERSLACK = 29


def _reduce_timer_slack(nanoseconds=1000):
    """Make this thread's short sleeps last what they ask for (Linux pads them by 50 us)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0)
    except (OSError, AttributeError):       # not Linux: keep the default slack
        pass

_log = logging.getLogger(__name__)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _mpi():
    """``mpi4py.MPI``, imported (and MPI initialised) on first use, not when mosaic_mpi is imported.

    The MPI library starts threads of its own during ``MPI_Init`` (MPICH's UCX/OFI progress
    threads). A process-directed SIGINT may be delivered to any thread that does not block it, and
    then a main thread blocked in a system call (``time.sleep``, the worker's ``epoll``) would not
    see Ctrl-C. So the init runs with SIGINT and SIGTERM blocked: the library's threads inherit
    that mask, and signals always reach the main thread. (If the application imported
    ``mpi4py.MPI`` first, its MPI threads keep the mask they were started with.)
    """
    if 'mpi4py.MPI' in sys.modules or threading.current_thread() is not threading.main_thread():
        from mpi4py import MPI
        return MPI
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        from mpi4py import MPI
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return MPI


def mpi_world():
    """``MPI.COMM_WORLD`` (initialises MPI on first call)."""
    return _mpi().COMM_WORLD


def abort_world(code=1):
    """End every rank of the job at once (``MPI_Abort`` on ``COMM_WORLD``)."""
    _mpi().COMM_WORLD.Abort(code)


def _chunks(size, max_chunk):
    if size == 0:
        return [(0, 0)]
    return [(start, min(start + max_chunk, size)) for start in range(0, size, max_chunk)]


class _Packet:
    __slots__ = ('pending', 'body', 'buffers', 'records')

    def __init__(self, pending, body=None, buffers=None, records=None):
        self.pending = pending
        self.body = body
        self.buffers = buffers
        self.records = records


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
        Called with the formatted traceback if the progress thread fails; by default the job is
        aborted with ``MPI_Abort``.
    """

    def __init__(self, comm, handler, max_chunk=1 << 30, spin_time=0.001, max_sleep=0.01,
                 buffer_pool=512 << 20, on_fatal=None):
        MPI = _mpi()
        self._MPI = MPI
        self.comm = comm.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._handler = handler
        self._max_chunk = max_chunk
        self._spin_time = spin_time
        self._max_sleep = max_sleep
        self._on_fatal = on_fatal
        self.pool = BufferPool(buffer_pool)
        self._outbox = collections.deque()
        self._wake = threading.Event()
        self._sleeping = False
        self._closing = False
        self._requests = []
        self._owners = []
        self._incoming = collections.defaultdict(collections.deque)
        self._batch = []
        self.bytes_sent = 0
        self.bytes_received = 0
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
        if self._sleeping:
            self._wake.set()

    def call_soon(self, fn, *args):
        """Run ``fn(*args)`` on the progress thread, in order with queued sends."""
        self._outbox.append((None, (fn, args)))
        if self._sleeping:
            self._wake.set()

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
            self.comm.Free()
        return clean

    @property
    def alive(self):
        """bool: whether the progress thread is running."""
        return self._thread.is_alive()

    # -- progress thread ---------------------------------------------------------------------------

    def _run(self):
        # Signals go to the main thread: Ctrl-C must interrupt the user's code, not this loop.
        if hasattr(signal, 'pthread_sigmask'):
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self._loop()
        except BaseException:
            text = traceback.format_exc()
            _log.critical('progress thread of rank %d failed:\n%s', self.rank, text)
            sys.stderr.write(f'mosaic_mpi: progress thread of rank {self.rank} failed:\n{text}')
            sys.stderr.flush()
            if self._on_fatal is not None:
                self._on_fatal(text)
            else:
                abort_world(1)

    def _loop(self):
        _reduce_timer_slack()
        first_sleep = _FIRST_SLEEP
        sleep = first_sleep
        idle_since = time.monotonic()
        while True:
            busy = False
            if self._outbox:
                self._flush_outbox()
                busy = True
            if self._probe():
                busy = True
            if self._requests and self._test():
                busy = True
            if self._batch:
                batch, self._batch = self._batch, []
                self._handler(batch)
            if busy:
                idle_since = time.monotonic()
                sleep = first_sleep
                continue
            if self._requests:
                os.sched_yield()  # a transfer is in flight: yield the core, never sleep
                continue
            if self._closing and not self._outbox:
                return
            if time.monotonic() - idle_since < self._spin_time:
                # sched_yield, not time.sleep(0): the latter sleeps for the timer slack (~50 us)
                os.sched_yield()
                continue
            self._sleeping = True
            if not self._outbox and not self._closing:
                self._wake.wait(sleep)
            self._sleeping = False
            self._wake.clear()
            # Recently active ranks stay quick to answer; long-idle ones sleep longer.
            recent = time.monotonic() - idle_since < _RECENT
            sleep = min(2 * sleep, _RECENT_SLEEP if recent else self._max_sleep)

    def _flush_outbox(self):
        per_dest = {}
        outbox = self._outbox
        while outbox:
            dest, item = outbox.popleft()
            if dest is None:
                # Run in order with sends: flush what is queued first.
                for d, records in per_dest.items():
                    self._send_packet(d, records)
                per_dest.clear()
                fn, args = item
                fn(*args)
                continue
            per_dest.setdefault(dest, []).append(item)
        for dest, records in per_dest.items():
            self._send_packet(dest, records)

    def _send_packet(self, dest, records):
        # Bounded packets: a burst of a million calls is not one giant header.
        for start in range(0, len(records), _MAX_RECORDS):
            self._send_one(dest, records[start:start + _MAX_RECORDS])

    def _send_one(self, dest, records):
        MPI = self._MPI
        body, buffers = pack_records(records)
        raws = [pickle.PickleBuffer(b).raw() for b in buffers]
        head = np.empty(1 + len(raws), dtype=np.int64)
        head[0] = len(raws)
        head[1:] = [r.nbytes for r in raws]
        header = head.tobytes() + body
        packet = _Packet(1, body=header, records=records)
        self._add(self.comm.Isend([header, MPI.BYTE], dest, TAG_HEADER), packet)
        nbytes = len(header)
        for raw in raws:
            for start, stop in _chunks(raw.nbytes, self._max_chunk):
                packet.pending += 1
                self._add(self.comm.Isend([raw[start:stop], MPI.BYTE], dest, TAG_DATA), packet)
            nbytes += raw.nbytes
        packet.buffers = raws
        self.bytes_sent += nbytes

    def _probe(self):
        MPI = self._MPI
        comm = self.comm
        status = MPI.Status()
        found = False
        while True:
            message = comm.improbe(MPI.ANY_SOURCE, TAG_HEADER, status)
            if message is None:
                return found
            found = True
            source = status.Get_source()
            header = bytearray(status.Get_count(MPI.BYTE))
            message.Recv([header, MPI.BYTE])
            count = int.from_bytes(header[:8], 'little')
            sizes = np.frombuffer(header, dtype=np.int64, count=count, offset=8)
            packet = _Packet(0, memoryview(header)[8 * (1 + count):], [])
            for size in sizes.tolist():
                buffer, lent = self.pool.take(size)
                packet.buffers.append(lent)
                for start, stop in _chunks(size, self._max_chunk):
                    packet.pending += 1
                    self._add(comm.Irecv([buffer[start:stop], MPI.BYTE], source, TAG_DATA),
                              packet)
                self.bytes_received += size
            self.bytes_received += len(header)
            queue = self._incoming[source]
            queue.append(packet)
            if packet.pending == 0 and len(queue) == 1:
                self._deliver(source)

    def _add(self, request, packet):
        self._requests.append(request)
        self._owners.append(packet)

    def _test(self):
        done = self._MPI.Request.Testsome(self._requests)
        if not done:
            return False
        finished = set(done)
        sources = set()
        for index in done:
            packet = self._owners[index]
            packet.pending -= 1
            if packet.pending == 0:
                if packet.records is not None:       # a send completed
                    for record in packet.records:
                        for field in record:
                            release = getattr(field, 'release', None)
                            if release is not None:
                                release()
                    packet.records = packet.buffers = None
                else:
                    sources.add(packet)
        self._requests = [r for i, r in enumerate(self._requests) if i not in finished]
        self._owners = [p for i, p in enumerate(self._owners) if i not in finished]
        if sources:
            for source, queue in list(self._incoming.items()):
                if queue and queue[0].pending == 0:
                    self._deliver(source)
        return True

    def _deliver(self, source):
        queue = self._incoming[source]
        while queue and queue[0].pending == 0:
            packet = queue.popleft()
            records = unpack_records(packet.body, packet.buffers)
            self._batch.extend((source, record) for record in records)
