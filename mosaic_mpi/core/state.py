"""What a caller knows about one task: plain state, changed only by the rank's client.

It lives here, below the runtime, so that a task proxy arriving by pickle can make its own
(``foreign_state``) without importing the runtime; it binds to the runtime on first use.
"""

from .status import TaskStatus

__all__ = ['TaskState', 'ArrayCall', 'foreign_state']


class TaskState:
    """What the caller knows about one task (plain state, changed by the client only)."""

    __slots__ = ('task_id', 'owner', 'tessera_id', 'method', 'label', 'status', 'error', 'client',
                 'foreign', 'held', 'pin', 'released', 'values', 'fetching', 'callbacks',
                 'done_future', 'init_future', 'nbytes', 'holds', 'seen', 'registered',
                 'events', 'group', 'index')

    def __init__(self, task_id, owner, tessera_id, method, label, client=None, foreign=False):
        self.task_id = task_id
        self.owner = owner
        self.tessera_id = tessera_id
        self.method = method
        self.label = label
        self.status = TaskStatus.PENDING
        self.error = None
        self.client = client
        self.foreign = foreign
        self.held = False           # a proxy rebuilt here by pickle, counted as a borrow
        self.pin = 0                # a borrowed tessera this call holds until it finishes
        self.released = False
        self.values = None          # selector -> fetched value (made on first fetch)
        self.fetching = None        # selector -> waiting futures
        self.callbacks = None       # (loop, fn, resolves) to run on completion
        self.done_future = None
        self.init_future = None
        self.nbytes = 0
        self.holds = None
        self.seen = False           # its outcome reached the user (or a dependent call)
        self.registered = False     # known to have reached its worker (TaskProxy.init)
        self.events = None          # (time, kind, name, data) records added on this rank
        self.group = None           # the ArrayCall this task is member ``index`` of, if any
        self.index = 0


class ArrayCall:
    """What a caller knows about one call on an array of tesserae (plain state, client only).

    The members' tasks have no :class:`TaskState` of their own until one is asked for (a
    member's :class:`~mosaic_mpi.core.task.TaskProxy`, made by indexing or iterating the
    :class:`~mosaic_mpi.core.tessera.TaskArray`): until then their status is kept here, so that
    the caller pays per member only an id, an entry in a table and a status byte.

    Parameters
    ----------
    task_ids : tuple of int
        The members' task ids, in member order.
    members : sequence of (int, int)
        ``(tessera_id, rank)`` of each member.
    method, label : str
        The method called, and ``'Class.method'``.
    """

    PENDING, DONE, FAILED = 0, 1, 2

    __slots__ = ('task_ids', 'members', 'method', 'label', 'status', 'errors', 'remaining',
                 'failures', 'states', 'pins', 'holds', 'nbytes', 'waiters', 'released',
                 'client', '__weakref__')

    def __init__(self, task_ids, members, method, label):
        self.task_ids = task_ids
        self.members = members
        self.method = method
        self.label = label
        self.status = bytearray(len(task_ids))     # PENDING, DONE or FAILED per member
        self.errors = None          # index -> packed error of the failed members
        self.remaining = len(task_ids)
        self.failures = 0
        self.states = None          # index -> TaskState of the members asked for
        self.pins = None            # index -> borrowed tessera id held until that member ends
        self.holds = None           # argument proxies kept until every member has finished
        self.nbytes = 0
        self.waiters = None         # (loop, fn, on_failure) to run when all end (or one fails)
        self.released = False       # the TaskArray is gone (members not asked for are free)
        self.client = None


def foreign_state(task_id, owner, tessera_id, method):
    """State of a task submitted by another rank (a proxy that arrived by pickle)."""
    return TaskState(task_id, owner, tessera_id, method, f'{method}', foreign=True)
