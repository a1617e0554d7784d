"""The wire vocabulary: the records ranks send each other.

Every record is a small immutable ``NamedTuple``; the runtime dispatches them from one explicit
table keyed by record type (see :mod:`mosaic_mpi.runtime.dispatch`). User data travels inside
records as :class:`~mosaic_mpi.serialisation.Payload` objects, whose large buffers the transport
sends out of band.

Ids of tasks, tesserae and fetch requests are made unique across ranks without any coordination:
``make_id(rank, n) = rank * 2**40 + n``.

On the wire (:func:`pack`, :func:`unpack`) each record is a plain tuple of ints, strings and bytes
headed by a one-byte type code: pickling named tuples, enum members and payload objects by
reference costs about 1 us each (4.5 us for a ``Call``, against 0.8 us as a plain tuple), and a
round trip packs and unpacks four records. Payloads are split into their pickle bytes and their
out-of-band buffers, which the transport sends as their own messages.
"""

import enum
import pickle
from typing import NamedTuple, Any, Optional, Tuple

from .serialisation import Payload

__all__ = ['make_id', 'id_rank', 'id_run', 'RUN_SHIFT', 'anonymous_tessera_id', 'Op', 'Select',
           'Ask', 'Dependency', 'CreateTessera', 'Call', 'Completed', 'CompletedMany', 'Fetch', 'Value', 'Drop',
           'Stop', 'Stopped', 'Query', 'Beat', 'Lost', 'PublishRequest', 'Publish', 'Published',
           'DropObject', 'Broadcasted', 'Probe', 'Cycle', 'JoinGroup', 'Refs', 'CallArray', 'pack',
           'unpack']

_ID_BITS = 40


def make_id(rank, n):
    """Globally unique id of the ``n``-th object made by ``rank``."""
    return (rank << _ID_BITS) | n


def anonymous_tessera_id(rank, run=0):
    """Id of the anonymous tessera each worker hosts in run ``run`` (``t.remote.<name>()``).

    The ids a rank makes in a run count from ``run * 2**RUN_SHIFT + 1``, so the ``n`` below that
    is free for it.
    """
    return make_id(rank, (run % 4096) << RUN_SHIFT)


RUN_SHIFT = 28     # runs started one after another in a process count their ids from run * 2**28


def id_run(uid):
    """The run (modulo 4096) of the id ``uid``: its ``n`` is ``run * 2**28 + k``."""
    return (uid >> RUN_SHIFT) & 0xFFF


def id_rank(uid):
    """The rank that made the id ``uid``."""
    return uid >> _ID_BITS


class Op(enum.IntEnum):
    """What a :class:`Call` does to its tessera."""
    CALL = 0       #: call a method
    GETATTR = 1    #: read an attribute (properties evaluated remotely)
    SETATTR = 2    #: write an attribute


class Select(enum.Enum):
    """Which part of a task's result a reference stands for (besides an output key).

    A plain ``Enum``, so that it never compares equal to an int output key.
    """
    WHOLE = 'whole'    #: the result, a 1-tuple unwrapped (what ``result()`` returns)
    DONE = 'done'      #: completion only, no value
    OBJECT = 'object'  #: a warehouse object, as stored; missing means dropped (never waited for)

    # Members are singletons compared by identity: hash them the same way (Enum's own __hash__
    # is a Python function, and selectors are dictionary keys on every fetch).
    __hash__ = object.__hash__


class Ask(enum.IntEnum):
    """What a :class:`Query` asks a rank."""
    INIT = 0       #: whether a task has reached its worker (answered once it has)
    SIZE = 1       #: the size in bytes of (part of) a task's result, once it is done
    BARRIER = 2    #: how many tasks the rank has submitted, once all of them have finished
    CLOCK = 3      #: the rank's wall clock (``time.time()``), at once
    TRACE = 4      #: the rank's task timeline records (tracing on)


class Dependency(NamedTuple):
    """A top-level argument of a call that refers to another task's result.

    ``slot`` is the positional index (int) or keyword (str) it fills; ``selector`` a
    :class:`Select` or an output key (``outputs[i]`` or ``outputs['name']``).
    """
    slot: Any
    task_id: int
    owner: int
    selector: Any
    label: str


class CreateTessera(NamedTuple):
    """Build a tessera on the receiving worker: ``payload`` holds ``(cls, args, kwargs)``."""
    task_id: int
    tessera_id: int
    caller: int
    name: str
    payload: Any
    deps: Tuple[Dependency, ...]


class Call(NamedTuple):
    """Run ``op`` on a tessera; ``payload`` holds ``(args, kwargs)`` with dependency slots empty.

    ``retries``: how often a failing call is run again (``max_retries=`` of the call); -1 for
    the tessera's own ``@tessera(max_retries=N)``.
    """
    task_id: int
    tessera_id: int
    caller: int
    op: Op
    method: str
    payload: Any
    deps: Tuple[Dependency, ...]
    retries: int = -1


class CallArray(NamedTuple):
    """One call of an array's method on its members living on the receiving worker.

    The same as one :class:`Call` per member, in member order (``task_ids[i]`` on
    ``tessera_ids[i]``), all with the one ``payload`` (serialised once by the caller; each member
    still unpickles its own copy), ``deps``, ``op``, ``method`` and ``retries``.
    """
    task_ids: Tuple[int, ...]
    tessera_ids: Tuple[int, ...]
    caller: int
    op: Op
    method: str
    payload: Any
    deps: Tuple[Dependency, ...]
    retries: int = -1


class Completed(NamedTuple):
    """A task (or a tessera's construction) ended; ``error`` is ``None`` or a Payload of the error."""
    task_id: int
    error: Optional[Any]


class CompletedMany(NamedTuple):
    """Several tasks of one caller ended successfully (the members of an array call that ran
    on the sending worker, in one record: see ``Worker._call_array``)."""
    task_ids: Tuple[int, ...]


class Fetch(NamedTuple):
    """Ask the owner of ``task_id`` for (part of) its result once it is done."""
    request_id: int
    task_id: int
    selector: Any
    requester: int


class Value(NamedTuple):
    """Answer to a :class:`Fetch`: ``payload`` holds the value, or the error if ``ok`` is false."""
    request_id: int
    ok: bool
    payload: Any


class Drop(NamedTuple):
    """Free results (``task_ids``) and tesserae (``tessera_ids``) nobody refers to any more."""
    task_ids: Tuple[int, ...]
    tessera_ids: Tuple[int, ...]


class Stop(NamedTuple):
    """The head ends the run; ``code`` is the exit code workers should end with.

    With ``now`` (the run failed) a worker ends at once, even in the middle of a task.
    """
    code: int
    now: bool = False


class Stopped(NamedTuple):
    """A worker acknowledges :class:`Stop`; it sends nothing after this."""
    rank: int


class Query(NamedTuple):
    """A question about a task (or, for ``Ask.BARRIER``, the rank) answered by a :class:`Value`."""
    request_id: int
    task_id: int
    kind: Ask
    selector: Any
    requester: int


class Beat(NamedTuple):
    """A heartbeat: the sender is alive (see :mod:`mosaic_mpi.comms.liveness`)."""


class Lost(NamedTuple):
    """The head tells the workers that worker ``rank`` was lost (``silence`` s without a word)."""
    rank: int
    silence: float
# -- warehouse objects (docs/architecture.md, "Warehouse") ------------------------------------------

class PublishRequest(NamedTuple):
    """A worker asks the head to sequence the broadcast of its warehouse object ``object_id``.

    ``data`` is the object's in-band pickle, ``sizes`` the byte sizes of its out-of-band buffers.
    """
    object_id: int
    data: bytes
    sizes: Tuple[int, ...]


class Publish(NamedTuple):
    """The head announces broadcast number ``seq`` (0, 1, 2, ... on every rank) of ``object_id``.

    Every rank posts the broadcasts of ``sizes`` (rooted at ``root``) in ``seq`` order.
    """
    seq: int
    object_id: int
    root: int
    data: bytes
    sizes: Tuple[int, ...]


class Published(NamedTuple):
    """``rank`` holds its copy of the published ``object_id`` (to the publishing rank)."""
    object_id: int
    rank: int


class DropObject(NamedTuple):
    """Forget ``object_id`` for good; answered by a :class:`Value` (``None``) to ``requester``."""
    request_id: int
    object_id: int
    requester: int


class Broadcasted(NamedTuple):
    """Local only, never sent: the broadcast of ``object_id`` has arrived here.

    Made by the transport when every buffer of the broadcast is in; ``payload`` wraps them.
    """
    object_id: int
    payload: Any


class Probe(NamedTuple):
    """Is ``target_task`` (on ``target_tessera``) held back, in the end, by ``initiator_task``?

    Sent along a chain of waiting methods (:mod:`mosaic_mpi.runtime.cycles`); ``path`` names the
    calls on the chain so far.
    """
    initiator_task: int
    initiator_rank: int
    target_task: int
    target_tessera: int
    path: Tuple[str, ...]


class Cycle(NamedTuple):
    """A probe found a cycle of waits closing at ``initiator_task``; ``path`` names its calls."""
    initiator_task: int
    path: Tuple[str, ...]


class JoinGroup(NamedTuple):
    """The next tessera the head builds on the receiving worker is member ``index`` of a
    collective array whose members live on ``ranks`` (in member order), see
    :mod:`mosaic_mpi.runtime.collective`. Sent just before that tessera's
    :class:`CreateTessera`."""
    ranks: Tuple[int, ...]
    index: int


class Refs(NamedTuple):
    """Reference-count updates for objects the receiver owns (:mod:`mosaic_mpi.runtime.borrowers`).

    ``updates`` is a flat tuple of ``(op, uid, where)`` triples, in the order they happened on the
    sender.
    """
    updates: Tuple[int, ...]


# -- wire form ---------------------------------------------------------------------------------------

_OPS = tuple(Op)
_new = tuple.__new__    # builds a named tuple from a tuple without its Python-level __new__
_OP_CODES = {op: op.value for op in Op}
_SELECTS = {s.value: s for s in Select}
_ASKS = tuple(Ask)


def _put(payload, buffers, held):
    extra = payload.buffers
    if extra:
        buffers.extend(extra)
        if payload.locked:
            held.append(payload)
    return payload.data, len(extra)


def _take(data, count, incoming):
    return Payload(data, [next(incoming) for _ in range(count)]) if count else Payload(data)


def _selector_out(selector):
    # Select members travel as their string value, output keys (any type) inside a 1-tuple.
    return selector.value if selector.__class__ is Select else (selector,)


def _selector_in(wire):
    return _SELECTS[wire] if wire.__class__ is str else wire[0]


def _deps_out(deps):
    return tuple((d.slot, d.task_id, d.owner, _selector_out(d.selector), d.label) for d in deps) \
        if deps else ()


def _deps_in(wire):
    return tuple(Dependency(slot, task_id, owner, _selector_in(selector), label)
                 for slot, task_id, owner, selector, label in wire) if wire else ()


def _create_out(r, buffers, held):
    cls_payload, payload = r.payload
    return (0, r.task_id, r.tessera_id, r.caller, r.name, *_put(cls_payload, buffers, held),
            *_put(payload, buffers, held), _deps_out(r.deps))


def _create_in(w, incoming):
    cls_payload = _take(w[5], w[6], incoming)
    return CreateTessera(w[1], w[2], w[3], w[4], (cls_payload, _take(w[7], w[8], incoming)),
                         _deps_in(w[9]))


def _call_out(r, buffers, held):
    task_id, tessera_id, caller, op, method, payload, deps, retries = r
    return (1, task_id, tessera_id, caller, _OP_CODES[op], method, *_put(payload, buffers, held),
            _deps_out(deps), retries)


def _call_in(w, incoming):
    _, task_id, tessera_id, caller, op, method, data, count, deps, retries = w
    return _new(Call, (task_id, tessera_id, caller, _OPS[op], method,
                       _take(data, count, incoming), _deps_in(deps), retries))


def _call_array_out(r, buffers, held):
    task_ids, tessera_ids, caller, op, method, payload, deps, retries = r
    return (18, task_ids, tessera_ids, caller, _OP_CODES[op], method,
            *_put(payload, buffers, held), _deps_out(deps), retries)


def _call_array_in(w, incoming):
    _, task_ids, tessera_ids, caller, op, method, data, count, deps, retries = w
    return _new(CallArray, (task_ids, tessera_ids, caller, _OPS[op], method,
                            _take(data, count, incoming), _deps_in(deps), retries))


def _completed_out(r, buffers, held):
    if r.error is None:
        return (2, r.task_id)
    return (2, r.task_id, *_put(r.error, buffers, held))


def _completed_in(w, incoming):
    return Completed(w[1], _take(w[2], w[3], incoming) if len(w) > 2 else None)


def _fetch_out(r, buffers, held):
    return (3, r.request_id, r.task_id, _selector_out(r.selector), r.requester)


def _fetch_in(w, incoming):
    return _new(Fetch, (w[1], w[2], _selector_in(w[3]), w[4]))


def _value_out(r, buffers, held):
    return (4, r.request_id, r.ok, *_put(r.payload, buffers, held))


def _value_in(w, incoming):
    return Value(w[1], w[2], _take(w[3], w[4], incoming))


def _query_out(r, buffers, held):
    return (8, r.request_id, r.task_id, int(r.kind), _selector_out(r.selector), r.requester)


def _query_in(w, incoming):
    return _new(Query, (w[1], w[2], _ASKS[w[3]], _selector_in(w[4]), w[5]))


def _plain_out(code):
    def out(r, buffers, held):
        return (code, *r)
    return out


def _plain_in(cls):
    def decode(w, incoming):
        return cls._make(w[1:])
    return decode


_ENCODE = {CreateTessera: _create_out, Call: _call_out, Completed: _completed_out,
           Fetch: _fetch_out, Value: _value_out, Drop: _plain_out(5), Stop: _plain_out(6),
           Stopped: _plain_out(7), Query: _query_out, Beat: _plain_out(9), Lost: _plain_out(10),
           PublishRequest: _plain_out(11), Publish: _plain_out(12), Published: _plain_out(13),
           DropObject: _plain_out(14), Probe: _plain_out(15), Cycle: _plain_out(16),
           JoinGroup: _plain_out(17)}
_DECODE = (_create_in, _call_in, _completed_in, _fetch_in, _value_in, _plain_in(Drop),
           _plain_in(Stop), _plain_in(Stopped), _query_in, _plain_in(Beat), _plain_in(Lost),
           _plain_in(PublishRequest), _plain_in(Publish), _plain_in(Published),
           _plain_in(DropObject), _plain_in(Probe), _plain_in(Cycle), _plain_in(JoinGroup))
# Array calls take 18 and 19; 20-23 are free; reference counting takes 24.
_ENCODE[CallArray] = _call_array_out
_ENCODE[CompletedMany] = _plain_out(19)
_ENCODE[Refs] = _plain_out(24)
_DECODE += (_call_array_in, _plain_in(CompletedMany)) + (None,) * (24 - len(_DECODE) - 2) \
    + (_plain_in(Refs),)


def pack(records):
    """Records to one packet's header body and out-of-band buffers.

    Parameters
    ----------
    records : list
        Records of the types above.

    Returns
    -------
    body : bytes
        The pickled wire tuples (protocol 5), or the compact form of :mod:`mosaic_mpi.compact`
        for packets of the records on a round trip's path.
    buffers : list of buffer-like
        Every payload buffer, in order: the transport sends each as its own message.
    held : list of Payload
        Payloads whose arrays are read-only until the send completes (call ``release()`` then).
    """
    body = _compact.pack(records)       # the records of a round trip: struct, not pickle
    if body is not None:
        return body, [], []
    buffers, held = [], []
    body = pickle.dumps([_ENCODE[r.__class__](r, buffers, held) for r in records],
                        protocol=pickle.HIGHEST_PROTOCOL)
    return body, buffers, held


def unpack(body, buffers):
    """Inverse of :func:`pack`: payloads get the received ``buffers`` themselves (no copy).

    Parameters
    ----------
    body : bytes-like
        The header body.
    buffers : list of buffer-like
        The received buffers, in order (writeable; arrays will be built on them).

    Returns
    -------
    list
        The records.
    """
    if body[0] == _compact.MARK:
        return _compact.unpack(body)
    incoming = iter(buffers)
    return [_DECODE[w[0]](w, incoming) for w in pickle.loads(body)]


from . import compact as _compact       # noqa: E402 (it reads the record types above)
