"""The states of a task."""

import enum

__all__ = ['TaskStatus']


class TaskStatus(enum.Enum):
    """Where a task is in its life."""
    PENDING = 'pending'   #: submitted, waiting for its arguments or its turn
    RUNNING = 'running'   #: executing on its worker
    DONE = 'done'         #: finished, result stored on its worker
    FAILED = 'failed'     #: raised, or a dependency failed
