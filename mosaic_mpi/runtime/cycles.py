"""Cycles of tesserae waiting on each other (S31): found by edge chasing, reported as errors.

Calls on one tessera run one at a time, so a method ``a.f`` that awaits ``b.g``, which awaits
``a.h`` (queued on ``a`` behind ``a.f``), waits forever. The direct case (a method awaiting a
call on its own tessera) is refused at once by the client. Longer cycles are found as in
Chandy, Misra and Haas ("Distributed deadlock detection", ACM TOCS 1(2), 1983): a method still
waiting after ``delay`` seconds sends a *probe* to the rank of the task it waits for. There the
probe asks what holds that task back: the task itself if it is running, else the task running on
its tessera. If that is the probe's initiator, the cycle is closed and the initiator's wait fails
with :class:`~mosaic_mpi.errors.DeadlockError` naming every call on it; if it is a task that
waits in turn, the probe goes on to the rank of what that task waits for; otherwise (it is
computing) the probe ends, and is sent again later while the wait lasts.
"""

import logging

from ..errors import DeadlockError
from ..messages import Cycle, Probe

__all__ = ['CycleDetector']

_log = logging.getLogger(__name__)
_MAX_PATH = 64


class CycleDetector:
    """One worker's side of the cycle search.

    Parameters
    ----------
    rank : int
        This worker.
    transport : Transport
        Where probes go.
    loop : asyncio.AbstractEventLoop
        The worker's loop (probes are handled there).
    hosts : dict
        The worker's tesserae (``tessera id -> TesseraHost``).
    delay : float
        Seconds a method waits before its first probe (then every ``2 * delay``).
    """

    def __init__(self, rank, transport, loop, hosts, delay=1.0):
        self.rank = rank
        self._transport = transport
        self._loop = loop
        self._hosts = hosts
        self._delay = delay
        self.waits = {}             # task uid -> (task, awaited TaskState, future, label)

    def label(self, task):
        """``'Cls.method (task N on worker:R)'``."""
        host = self._hosts.get(task.tessera_id)
        name = host.name if host is not None else '?'
        return f'{name}.{task.method} (task {task.uid} on worker:{self.rank})'

    def waiting(self, task, state, future):
        """The method of ``task`` awaits ``state``'s task through ``future`` (on the loop)."""
        self.waits[task.uid] = (task, state, future, self.label(task))
        self._loop.call_later(self._delay, self._probe, task.uid)

    def done(self, task):
        """The wait of ``task`` ended."""
        self.waits.pop(task.uid, None)

    def _probe(self, uid):
        entry = self.waits.get(uid)
        if entry is None:
            return
        task, state, future, label = entry
        self._transport.send(state.owner, Probe(uid, self.rank, state.task_id, state.tessera_id,
                                                (label,)))
        self._loop.call_later(2 * self._delay, self._probe, uid)

    def on_probe(self, record):
        """Follow a probe one step (on the loop)."""
        host = self._hosts.get(record.target_tessera)
        if host is None or host.current is None:
            return
        blocker = host.current
        if blocker.uid == record.target_task:
            step = self.label(blocker)              # running, and waiting itself?
        else:
            queued = next((t for t in host.queue if getattr(t, 'uid', None) == record.target_task),
                          None)
            if queued is None:
                return                              # finished meanwhile: no cycle through it
            step = f'{self.label(queued)}, queued behind {self.label(blocker)}'
        path = record.path + (step,)
        if blocker.uid == record.initiator_task:
            self._transport.send(record.initiator_rank, Cycle(record.initiator_task, path))
            return
        entry = self.waits.get(blocker.uid)
        if entry is None or len(path) > _MAX_PATH:
            return                                  # it computes: it will finish
        state = entry[1]
        self._transport.send(state.owner, Probe(record.initiator_task, record.initiator_rank,
                                                state.task_id, state.tessera_id, path))

    def on_cycle(self, record):
        """A probe of ours came back: fail the wait (on the loop)."""
        entry = self.waits.pop(record.initiator_task, None)
        if entry is None:
            return
        future = entry[2]
        if not future.done():
            cycle = ' awaits '.join(record.path)
            _log.warning('worker:%d: cycle of waits: %s', self.rank, cycle)
            future.set_exception(DeadlockError(
                f'{cycle}: these calls would wait for each other forever (calls on one tessera '
                f'run one at a time)'))
