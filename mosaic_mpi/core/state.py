"""What a caller knows about one task: plain state, changed only by the rank's client.

It lives here, below the runtime, so that a task proxy arriving by pickle can make its own
(``foreign_state``) without importing the runtime; it binds to the runtime on first use.
"""

from .status import TaskStatus

__all__ = ['TaskState', 'foreign_state']


class TaskState:
    """What the caller knows about one task (plain state, changed by the client only)."""

    __slots__ = ('task_id', 'owner', 'tessera_id', 'method', 'label', 'status', 'error', 'client',
                 'foreign', 'held', 'pin', 'released', 'values', 'fetching', 'callbacks',
                 'done_future', 'init_future', 'nbytes', 'holds', 'seen', 'registered',
                 'events')

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


def foreign_state(task_id, owner, tessera_id, method):
    """State of a task submitted by another rank (a proxy that arrived by pickle)."""
    return TaskState(task_id, owner, tessera_id, method, f'{method}', foreign=True)
