"""Packets over MPI: the only module that imports mpi4py.

Wire format. A *packet* from one rank to another is a header message (tag ``TAG_HEADER``) followed
by its data messages (tag ``TAG_DATA``): one per chunk of each large out-of-band buffer, and
shared ones that carry the packet's smaller buffers side by side (see *Coalescing* below). The
header is::

    int64 n = 0 | pickle (protocol 5) of a list of records                  (no buffers), or
    int64 n | int64 size[0] ... size[n-1] | int64 len(pickle) | pickle | inline buffers

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

Broadcasts (:meth:`Wire.broadcast`, the data of published warehouse objects) run on a second
duplicate of the communicator, made at start-up, that carries nothing else: its collectives can
never be confused with the packets' point-to-point messages. They are nonblocking
(``MPI_Ibcast``), one per out-of-band buffer chunk, and complete through the same request list as
packets: the caller (the runtime) posts them on every rank in one agreed order.

A :class:`Wire` is not thread-safe: the transport (:mod:`.transport`) calls it under its lock.
"""

import collections
import pickle
import signal
import struct
import sys
import threading

import numpy as np

from ..messages import pack, unpack
from .pool import BufferPool

__all__ = ['Wire', 'mpi_world', 'abort_world', 'launcher_rank', 'TAG_HEADER', 'TAG_DATA']

TAG_HEADER = 17
TAG_DATA = 18
_COUNT = struct.Struct('<q').unpack_from
_NO_BUFFERS = bytes(8)  # header prefix of a packet without out-of-band buffers (n = 0)
_EAGER = 16384          # bytes: packets up to this size complete without further progress


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}    # blocked in MPI's threads and the progress thread


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
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        from mpi4py import MPI
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return MPI


def mpi_world():
    """``MPI.COMM_WORLD`` (initialises MPI on first call)."""
    return _mpi().COMM_WORLD


def launcher_rank():
    """This process's rank in ``COMM_WORLD`` as the launcher set it, without initialising MPI
    (0 when not started by a launcher)."""
    import os
    for name in ('PMI_RANK', 'OMPI_COMM_WORLD_RANK', 'PMIX_RANK', 'SLURM_PROCID'):
        value = os.environ.get(name)
        if value is not None and value.isdigit():
            return int(value)
    return 0


def abort_world(code=1):
    """End every rank of the job at once (``MPI_Abort`` on ``COMM_WORLD``)."""
    _mpi().COMM_WORLD.Abort(code)


def _chunks(size, max_chunk):
    if size == 0:
        return [(0, 0)]
    return [(start, min(start + max_chunk, size)) for start in range(0, size, max_chunk)]


class _Packet:
    # ``held`` (sent packets only): payloads whose arrays stay read-only until the send completes
    # ``done`` (broadcasts only): the ``(source, record)`` to deliver when it completes
    # ``source`` (received packets only): the rank it comes from
    __slots__ = ('pending', 'body', 'buffers', 'held', 'large', 'done', 'source')

    def __init__(self, pending, body=None, buffers=None, held=None, source=None):
        self.pending = pending
        self.large = False
        self.body = body
        self.buffers = buffers
        self.held = held
        self.done = None
        self.source = source


class _Chunk:
    # The owner of a large data message of a sent packet: its completion means that ``dest``
    # received it (a message this large is never buffered eagerly), so ``dest`` is alive.
    __slots__ = ('packet', 'dest')

    def __init__(self, packet, dest):
        self.packet = packet
        self.dest = dest


# Coalescing. Each data message of a mid-size buffer costs a rendezvous (MPICH sends anything past
# its eager limit, tens of KiB, only once the receiver has matched it), and the receiver posts it
# only once the header is in: a stream of calls with a 64 KiB argument each ran at a few hundred
# calls/s with one data message per argument. So the buffers of a packet below _COALESCE bytes are
# copied into the header message itself, after the pickle, while they fit in _INLINE bytes; the
# rest of them into shared data messages of at most _GROUP bytes. Each buffer starts at a multiple
# of _ALIGN bytes, so arrays built on it stay aligned. Buffers of _COALESCE bytes or more keep
# their own messages, sent straight from their memory. Both sides derive the same plan from the
# header's sizes alone (_plan).
_COALESCE = 1 << 20
_INLINE = 1 << 20
_GROUP = 4 << 20
_ALIGN = 64


def _align(n):
    return -(-n // _ALIGN) * _ALIGN


def _plan(sizes, max_chunk):
    """Where the out-of-band buffers of a packet travel, from their ``sizes`` (bytes) alone.

    Returns
    -------
    inline : list of (int, int)
        ``(index, offset)`` of the buffers carried in the header message, ``offset`` counted from
        the start of its inline area: buffers below ``_COALESCE`` bytes, in order, while the area
        stays within ``_INLINE`` bytes.
    messages : list of [int, list of (int, int)]
        The data messages, in order: ``[total, members]``. A single member is sent on its own
        (in chunks of ``max_chunk``); several share one message of ``total`` bytes (at most
        ``_GROUP`` and ``max_chunk``), buffer ``index`` at byte ``offset``. Buffers of
        ``_COALESCE`` bytes or more never share.
    """
    limit = min(_GROUP, max_chunk)
    inline = []
    end = 0                 # end of the inline area so far
    messages = []
    group = None
    for index, size in enumerate(sizes):
        if size >= _COALESCE:
            messages.append([size, [(index, 0)]])
            continue
        offset = _align(end)
        if offset + size <= _INLINE and (group is None):
            inline.append((index, offset))
            end = offset + size
            continue
        if group is not None:
            offset = _align(group[0])
            if offset + size <= limit:
                group[1].append((index, offset))
                group[0] = offset + size
                continue
        group = [size, [(index, 0)]]
        messages.append(group)
    return inline, messages


# Data messages at least this large prove, when their send completes, that the receiver is alive:
# far above any MPI library's eager limit (MPICH's and Open MPI's are tens of KiB).
_PROOF = 1 << 20


class Wire:
    """Sends and receives packets of records on a private duplicate of a communicator.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        Communicator to use; it is duplicated, so these messages never mix with the application's.
    max_chunk : int
        Largest MPI message in bytes.
    buffer_pool : int
        Most bytes of freed large receive buffers kept for reuse (see :mod:`.pool`).

    Attributes
    ----------
    requests : list of mpi4py.MPI.Request
        Requests in flight (sends not yet complete, chunk receives).
    large : int
        Packets (and broadcasts) in flight with data messages: MPI moves those only while
        someone calls into it.
    bytes_sent, bytes_received : int
        Point-to-point totals, headers included.
    bytes_broadcast : int
        Bytes of the broadcasts this rank took part in (as root or receiver).
    """

    def __init__(self, comm, max_chunk, buffer_pool):
        MPI = _mpi()
        self._MPI = MPI
        self.comm = comm.Dup()
        self.collectives = comm.Dup()       # broadcasts only (see the module docstring)
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self._max_chunk = max_chunk
        self.pool = BufferPool(buffer_pool)
        self._status = MPI.Status()
        self.requests = []
        self._owners = []
        self._incoming = collections.defaultdict(collections.deque)
        self.large = 0
        self.heard = set()          # ranks heard from (see test) since the transport last looked
        self.bytes_sent = 0
        self.bytes_received = 0
        self.bytes_broadcast = 0
        self.packets_sent = 0       # point-to-point packets handed to MPI (to_self: to this rank)
        self.packets_to_self = 0
        self.local_packets = 0      # packets to this rank delivered without MPI (deliver_local)

    def free(self):
        """Free the communicators (every request must have completed)."""
        self.comm.Free()
        self.collectives.Free()

    def send(self, dest, records):
        """Start sending ``records`` to rank ``dest`` as one packet (returns at once).

        Parameters
        ----------
        dest : int
            Rank in the communicator.
        records : list
            Records of :mod:`mosaic_mpi.messages`.
        """
        MPI = self._MPI
        comm = self.comm
        body, buffers, held = pack(records)
        self.packets_sent += 1
        if dest == self.rank:
            self.packets_to_self += 1
        if not buffers:
            header = _NO_BUFFERS + body
            self.bytes_sent += len(header)
            request = comm.Isend([header, MPI.BYTE], dest, TAG_HEADER)
            if request.Test():          # small messages usually complete at once (eager)
                return
            packet = _Packet(1, body=header, held=held)
            self._add(request, packet)
            if len(header) > _EAGER:
                packet.large = True
                self.large += 1
            return
        raws = [pickle.PickleBuffer(b).raw() for b in buffers]
        inline, messages = _plan([r.nbytes for r in raws], self._max_chunk)
        # int64 n | int64 sizes[n] | int64 len(body) | body | inline area (at a multiple of 64)
        start = _align(8 * (2 + len(raws)) + len(body))
        header = np.empty(start + (inline[-1][1] + raws[inline[-1][0]].nbytes if inline else 0),
                          dtype=np.uint8)
        struct.pack_into(f'<{2 + len(raws)}q', header, 0, len(raws), *[r.nbytes for r in raws],
                         len(body))
        head = 8 * (2 + len(raws))
        header[head:head + len(body)] = np.frombuffer(body, dtype=np.uint8)
        for index, offset in inline:
            part = raws[index]
            header[start + offset:start + offset + part.nbytes] = np.frombuffer(part, np.uint8)
        packet = _Packet(1, body=header, held=held)
        if messages:
            packet.large = True
            self.large += 1
        request = comm.Isend([header, MPI.BYTE], dest, TAG_HEADER)
        nbytes = header.nbytes
        if not messages and request.Test():     # eager, and nothing else to send: done
            for payload in held:
                payload.release()
            self.bytes_sent += nbytes
            return
        if not messages and nbytes > _EAGER:
            packet.large = True
            self.large += 1
        self._add(request, packet)
        proof = _Chunk(packet, dest)
        for total, members in messages:
            if len(members) == 1:
                raw = raws[members[0][0]]
            else:
                raw = np.empty(total, dtype=np.uint8)
                for index, offset in members:
                    part = raws[index]
                    raw[offset:offset + part.nbytes] = np.frombuffer(part, dtype=np.uint8)
                raws.append(raw)                # kept alive until the send completes
            for begin, stop in _chunks(raw.nbytes, self._max_chunk):
                packet.pending += 1
                self._add(comm.Isend([raw[begin:stop], MPI.BYTE], dest, TAG_DATA),
                          proof if stop - begin >= _PROOF else packet)
            nbytes += raw.nbytes
        packet.buffers = raws
        self.bytes_sent += nbytes

    def deliver_local(self, records, batch):
        """Hand ``records`` sent by this rank to itself on to ``batch``, without MPI.

        They go through the wire form all the same (:func:`~mosaic_mpi.messages.pack` and
        ``unpack``): the receiving side gets records and payloads of its own, and copies of the
        out-of-band buffers (a consumer may change its arrays in place; the sender's stay as
        they were), as it would from another rank.

        Parameters
        ----------
        records : list
            Records of :mod:`mosaic_mpi.messages`, in send order.
        batch : list
            ``(self.rank, record)`` pairs are appended, in order.
        """
        body, buffers, held = pack(records)
        copies = []
        for buffer in buffers:
            raw = pickle.PickleBuffer(buffer).raw()
            target, lent = self.pool.take(raw.nbytes)
            target[:] = np.frombuffer(raw, dtype=np.uint8)
            copies.append(lent)
        for payload in held:
            payload.release()
        self.local_packets += 1
        rank = self.rank
        batch.extend([(rank, record) for record in unpack(body, copies)])

    def broadcast(self, root, payload, sizes, make_record):
        """Post the nonblocking broadcasts of a list of buffers from ``root`` (returns at once).

        Every rank of the communicator must call this for every broadcast, in the same order.

        Parameters
        ----------
        root : int
            The rank that has the data.
        payload : Payload or None
            On ``root``: a :class:`~mosaic_mpi.serialisation.Payload` whose out-of-band buffers are
            sent straight from their memory (its arrays stay read-only until the broadcast ends
            here). Elsewhere ``None``.
        sizes : sequence of int
            Byte size of each buffer.
        make_record : callable or None
            Elsewhere than on ``root``: ``make_record(received)`` with ``received`` the list of
            receive buffers (writeable, in order) returns the record delivered, as from
            ``root``, when every buffer is in. ``None`` on ``root``.

        Raises
        ------
        ValueError
            If ``sizes`` is empty (nothing to broadcast).
        """
        if not sizes:
            raise ValueError('a broadcast needs at least one buffer')
        MPI = self._MPI
        comm = self.collectives
        packet = _Packet(0, held=[])
        packet.large = True
        self.large += 1
        if self.rank == root:
            packet.held.append(payload)
            raws = [pickle.PickleBuffer(b).raw() for b in payload.buffers]
        else:
            raws, lent = [], []
            for size in sizes:
                buffer, view = self.pool.take(size)
                raws.append(buffer)
                lent.append(view)
            packet.done = (root, make_record(lent))
        for raw in raws:
            for start, stop in _chunks(raw.nbytes, self._max_chunk):
                packet.pending += 1
                self._add(comm.Ibcast([raw[start:stop], MPI.BYTE], root), packet)
        packet.buffers = raws
        self.bytes_broadcast += sum(sizes)

    def receive(self, batch):
        """Receive every header that has arrived and post the receives of its data messages.

        Parameters
        ----------
        batch : list
            Complete packets' records are appended as ``(source, record)`` pairs, in each
            source's send order.

        Returns
        -------
        bool
            Whether a header arrived.
        """
        MPI = self._MPI
        comm = self.comm
        status = self._status
        found = False
        while True:
            message = comm.improbe(MPI.ANY_SOURCE, TAG_HEADER, status)
            if message is None:
                return found
            found = True
            source = status.Get_source()
            self.heard.add(source)
            header = bytearray(status.Get_count(MPI.BYTE))
            message.Recv([header, MPI.BYTE])
            count = _COUNT(header)[0]
            if not count and not self._incoming.get(source):
                # No buffers to wait for and nothing earlier from this source still arriving:
                # hand the records on now (the common case: small control messages).
                self.bytes_received += len(header)
                batch.extend([(source, record) for record in unpack(memoryview(header)[8:], ())])
                continue
            if not count:
                packet = _Packet(0, memoryview(header)[8:], [], source=source)
            else:
                fields = struct.unpack_from(f'<{1 + count}q', header, 8)
                sizes, length = list(fields[:count]), fields[count]
                head = 8 * (2 + count)
                view = memoryview(header)
                packet = _Packet(0, view[head:head + length], [None] * count, source=source)
                lents = packet.buffers
                start = _align(head + length)
                inline, messages = _plan(sizes, self._max_chunk)
                for index, offset in inline:    # arrays are built on the header's memory
                    lents[index] = view[start + offset:start + offset + sizes[index]]
                if messages:
                    packet.large = True
                    self.large += 1
                for total, members in messages:
                    buffer, lent = self.pool.take(total)
                    if len(members) == 1:
                        lents[members[0][0]] = lent
                    else:
                        for index, offset in members:
                            lents[index] = lent[offset:offset + sizes[index]]
                    for begin, stop in _chunks(total, self._max_chunk):
                        packet.pending += 1
                        self._add(comm.Irecv([buffer[begin:stop], MPI.BYTE], source, TAG_DATA),
                                  packet)
                    self.bytes_received += total
            self.bytes_received += len(header)
            queue = self._incoming[source]
            queue.append(packet)
            if packet.pending == 0 and len(queue) == 1:
                self._deliver(source, batch)

    def _add(self, request, packet):
        self.requests.append(request)
        self._owners.append(packet)

    def test(self, batch):
        """Complete the requests that finished: unlock the arrays of completed sends, deliver
        completed packets.

        Parameters
        ----------
        batch : list
            As for :meth:`receive`.

        Returns
        -------
        bool
            Whether any request finished.
        """
        done = self._MPI.Request.Testsome(self.requests)
        if not done:
            return False
        finished = set(done)
        sources = set()
        heard = self.heard
        for index in done:
            packet = self._owners[index]
            if type(packet) is _Chunk:            # that rank took a large message: it is alive
                heard.add(packet.dest)
                packet = packet.packet
            elif packet.source is not None:       # data from that rank is flowing: it is alive
                heard.add(packet.source)
            packet.pending -= 1
            if packet.pending == 0:
                if packet.large:
                    self.large -= 1
                if packet.held is not None:       # a send completed: unlock its arrays
                    for payload in packet.held:
                        payload.release()
                    packet.held = packet.buffers = None
                    if packet.done is not None:   # a broadcast arrived: hand its record on
                        batch.append(packet.done)
                else:
                    sources.add(packet)
        if len(finished) == len(self.requests):
            self.requests = []
            self._owners = []
        else:
            self.requests = [r for i, r in enumerate(self.requests) if i not in finished]
            self._owners = [p for i, p in enumerate(self._owners) if i not in finished]
        if sources:
            for source, queue in list(self._incoming.items()):
                if queue and queue[0].pending == 0:
                    self._deliver(source, batch)
        return True

    def _deliver(self, source, batch):
        queue = self._incoming[source]
        while queue and queue[0].pending == 0:
            packet = queue.popleft()
            records = unpack(packet.body, packet.buffers)
            batch.extend([(source, record) for record in records])
