"""The wire vocabulary: the records ranks send each other.

Every record is a small immutable ``NamedTuple``; the runtime dispatches them from one explicit
table keyed by record type (see :mod:`mosaic_mpi.runtime.dispatch`). User data travels inside
records as :class:`~mosaic_mpi.serialisation.Payload` objects, whose large buffers the transport
sends out of band.

Ids of tasks, tesserae and fetch requests are made unique across ranks without any coordination:
``make_id(rank, n) = rank * 2**40 + n``.
"""

import enum
from typing import NamedTuple, Any, Optional, Tuple

__all__ = ['make_id', 'id_rank', 'Op', 'Select', 'Dependency', 'CreateTessera', 'Call', 'Completed',
           'Fetch', 'Value', 'Drop', 'Stop']

_ID_BITS = 40


def make_id(rank, n):
    """Globally unique id of the ``n``-th object made by ``rank``."""
    return (rank << _ID_BITS) | n


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
    """Run ``op`` on a tessera; ``payload`` holds ``(args, kwargs)`` with dependency slots empty."""
    task_id: int
    tessera_id: int
    caller: int
    op: Op
    method: str
    payload: Any
    deps: Tuple[Dependency, ...]


class Completed(NamedTuple):
    """A task (or a tessera's construction) ended; ``error`` is ``None`` or a Payload of the error."""
    task_id: int
    error: Optional[Any]


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


__all__.append('Stopped')
