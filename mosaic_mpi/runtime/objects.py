"""Warehouse objects on one rank: ``put``, ``get``, ``drop`` and the broadcast of published ones.

The value of ``await runtime.put(obj)`` stays on the rank that put it (head or worker), in its
:class:`~.warehouse.Warehouse`, under an id that names that rank; the reference travels, the
value does not. Other ranks read it with a ``Fetch`` (selector ``Select.OBJECT``) to the owner,
answered by a ``Value`` whose arrays travel out of band, as task results do (worker to worker).

Publishing (``publish=True``) puts a copy on every rank with one nonblocking broadcast per
out-of-band buffer (one for a single array), on the transport's broadcast communicator. MPI
needs every rank to post its collectives on a communicator in the same order, so the head
sequences them: it numbers each publish (``Publish.seq``), announces it to every worker (the
in-band pickle and the buffer sizes, point to point) and posts its own part at once; a worker that
publishes asks the head first (``PublishRequest``) and posts its part, as root, when the head's
announcement comes back. Every rank handles the head's announcements in the order they were sent,
so every rank posts the broadcasts in ``seq`` order. Each rank acknowledges its copy to the
publisher (``Published``); ``put`` returns once every rank has, so reads of the reference are
then local everywhere. A value with no out-of-band buffers travels in the announcement itself.

Dropping removes the value and every copy: ``DropObject`` to every other rank, each answering when
it has forgotten it, and a *tombstone* on every rank, so later reads anywhere raise ``KeyError``
at once (an owner asked for an id it does not hold answers ``KeyError`` too: a missing object is
never waited for).
"""

import asyncio

from ..core.warehouse_object import WarehouseObject
from ..errors import SerialisationError
from ..messages import (Broadcasted, DropObject, Fetch, Publish, PublishRequest, Published, Select,
                        Value, id_rank)
from ..core.references import uncounted
from ..serialisation import Payload, dumps, loads
from .bridge import settle
from .failures import pack_error, unpack_error
from .ownership import private
from .warehouse import Entry, missing_object, value_for

__all__ = ['Objects']

_NONE = dumps(None)


class Objects:
    """This rank's side of the warehouse objects.

    Parameters
    ----------
    rank, size : int
        This rank and the number of ranks of the runtime.
    transport : Transport
        Where records go; also posts the broadcasts.
    bridge : LoopBridge
        How progress cycles resolve futures on event loops.
    requests : Requests
        The rank's request ids (answers come back as ``Value`` records).
    warehouse : Warehouse
        The rank's store.
    new_id : callable
        Fresh ids of this rank (shared with task ids).
    oob_threshold : int
        Bytes from which buffers travel out of band.

    Attributes
    ----------
    fetches : int
        Fetches of warehouse objects this rank has sent (reads that were not local).
    """

    def __init__(self, rank, size, transport, bridge, requests, warehouse, new_id,
                 oob_threshold):
        self.rank = rank
        self.size = size
        self._transport = transport
        self._bridge = bridge
        self._requests = requests
        self._warehouse = warehouse
        self._new_id = new_id
        self._threshold = oob_threshold
        self._seq = 0               # head: next number to give; worker: next one expected
        self._roots = {}            # object id -> Payload this rank will broadcast (its puts)
        self._publishing = {}       # object id -> [acknowledgements awaited, loop, future]
        self.fetches = 0

    # -- user threads ------------------------------------------------------------------------------

    async def put(self, obj, publish=False):
        """Store ``obj`` on this rank; with ``publish``, also on every other rank.

        Parameters
        ----------
        obj : object
            The value. This rank keeps a copy made now: changing ``obj`` afterwards does not
            change what readers get (section 0: no sharing).
        publish : bool
            Copy it to every rank (one broadcast) before returning.

        Returns
        -------
        WarehouseObject

        Raises
        ------
        SerialisationError
            With ``publish``, if ``obj`` cannot be pickled (nothing is stored then).
        """
        object_id = self._new_id()
        ref = WarehouseObject(object_id, type(obj).__name__.lower(), bool(publish))
        if not publish:
            self._warehouse.add_object(object_id, Entry(True, private(obj), None))
            return ref
        with uncounted():       # unpickled on every rank: proxies inside register uncounted
            payload = dumps(obj, self._threshold)
        self._warehouse.add_object(object_id, Entry(True, private(obj), None))
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._publishing[object_id] = [self.size - 1, loop, future]
        sizes = tuple(memoryview(b).nbytes for b in payload.buffers)
        if self.rank == 0:
            self._transport.call_soon(self._sequence, object_id, 0, payload.data, sizes, payload)
        else:
            self._roots[object_id] = payload
            self._transport.send(0, PublishRequest(object_id, payload.data, sizes))
        await future
        return ref

    async def get(self, ref):
        """The value ``ref`` stands for (see :meth:`WarehouseObject.value`).

        Parameters
        ----------
        ref : WarehouseObject or str
            A reference, or its uid.

        Returns
        -------
        object

        Raises
        ------
        TypeError
            If ``ref`` is neither.
        ValueError
            If ``ref`` is a malformed uid or names a rank outside this runtime.
        KeyError
            At once if the object was dropped or its owner does not know it.
        SerialisationError
            If the value arrived but cannot be unpickled here.
        """
        ref = self._check(ref)
        object_id = ref.object_id
        entry = self._warehouse.find(object_id)
        if entry is not None:
            if entry.ok:
                return private(entry.value)     # the reader's own copy, as a fetch would give
            raise unpack_error(entry.error)
        dropped = self._warehouse.dropped(object_id)
        owner = id_rank(object_id)
        if dropped or owner == self.rank:
            raise missing_object(object_id, dropped, ref.uid)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        request_id = self._requests.new(
            lambda record: self._bridge.resolve(loop, self._fetched, ref, future, record), owner)
        self.fetches += 1
        self._transport.send(owner, Fetch(request_id, object_id, Select.OBJECT, self.rank))
        return await future

    async def drop(self, ref):
        """Forget ``ref``'s value on every rank; returns when all have.

        Parameters
        ----------
        ref : WarehouseObject or str
            A reference, or its uid.

        Raises
        ------
        TypeError, ValueError
            As for :meth:`get`.
        """
        object_id = self._check(ref).object_id
        self._warehouse.forget(object_id)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        remaining = [self.size - 1]

        def answered(record):
            remaining[0] -= 1
            if remaining[0] == 0:
                self._bridge.resolve(loop, settle, future)

        for rank in range(self.size):
            if rank != self.rank:
                request_id = self._requests.new(answered, rank)
                self._transport.send(rank, DropObject(request_id, object_id, self.rank))
        await future

    def _check(self, ref):
        if isinstance(ref, str):
            ref = WarehouseObject.from_uid(ref)
        elif not isinstance(ref, WarehouseObject):
            raise TypeError(f'expected a WarehouseObject (what runtime.put returns) or its uid, '
                            f'not {type(ref).__name__}')
        if not 0 <= ref.owner < self.size:
            raise ValueError(f'{ref.uid} names rank {ref.owner}, which is not in this runtime '
                             f'({self.size} ranks): a reference from another run?')
        return ref

    @staticmethod
    def _fetched(ref, future, record):
        value = error = None
        try:
            if record.ok:
                value = loads(record.payload)
            else:
                error = unpack_error(record.payload)
                if isinstance(error, KeyError):     # the owner's: name the object by its uid
                    error = KeyError(str(error.args[0]).replace(
                        f'ware-*-{ref.object_id:032x}', ref.uid))
        except Exception as exc:
            error = SerialisationError(f'warehouse object {ref.uid} arrived but cannot be '
                                       f'unpickled here: {type(exc).__name__}: {exc}')
            error.__cause__ = exc
        settle(future, value, error)

    # -- progress cycles ---------------------------------------------------------------------------

    def on_fetch(self, source, record):
        """Answer a read of a warehouse object at once: its value, or ``KeyError``."""
        entry = self._warehouse.find(record.task_id)
        if entry is None:
            error = missing_object(record.task_id, self._warehouse.dropped(record.task_id))
            entry = Entry(False, None, pack_error(error, ''))
        self._transport.send(record.requester, value_for(record, entry, self._threshold))

    def on_drop(self, source, record):
        """Forget an object (the value, or this rank's copy) and say so."""
        self._warehouse.forget(record.object_id)
        self._transport.send(record.requester, Value(record.request_id, True, _NONE))

    def on_publish_request(self, source, record):
        """Head: a worker publishes; give it the next number."""
        self._sequence(record.object_id, source, record.data, record.sizes)

    def _sequence(self, object_id, root, data, sizes, payload=None):
        # Head, in a progress cycle: number the publish, announce it, post the head's part.
        seq = self._seq
        self._seq += 1
        for rank in range(1, self.size):
            self._transport.send(rank, Publish(seq, object_id, root, data if rank != root else b'',
                                               sizes))
        self._take_part(object_id, root, data, sizes, payload)

    def on_publish(self, source, record):
        """Worker: the head's announcement of the next broadcast; post this rank's part."""
        if record.seq != self._seq:
            raise RuntimeError(f'worker:{self.rank}: publish number {record.seq} arrived, '
                               f'{self._seq} expected: broadcasts would be posted out of order')
        self._seq += 1
        payload = self._roots.pop(record.object_id) if record.root == self.rank else None
        self._take_part(record.object_id, record.root, record.data, record.sizes, payload)

    def _take_part(self, object_id, root, data, sizes, payload):
        if root == self.rank:
            if sizes:
                self._transport.broadcast(root, payload, sizes, None)
            else:
                payload.release()
            return
        if not sizes:
            self._install(root, object_id, Payload(data))
            return
        self._transport.broadcast(root, None, sizes,
                                  lambda received: Broadcasted(object_id, Payload(data, received)))

    def on_broadcasted(self, source, record):
        """A broadcast arrived: keep the copy."""
        self._install(source, record.object_id, record.payload)

    def _install(self, root, object_id, payload):
        try:
            entry = Entry(True, loads(payload), None)
        except Exception as exc:
            error = SerialisationError(f'published warehouse object {object_id:032x} cannot be '
                                       f'unpickled on rank {self.rank}: {type(exc).__name__}: '
                                       f'{exc}')
            entry = Entry(False, None, pack_error(error, ''))
        self._warehouse.add_object(object_id, entry)
        self._transport.send(root, Published(object_id, self.rank))

    def on_published(self, source, record):
        """A rank holds its copy of an object this rank published."""
        state = self._publishing.get(record.object_id)
        state[0] -= 1
        if state[0] == 0:
            del self._publishing[record.object_id]
            self._bridge.resolve(state[1], settle, state[2])
