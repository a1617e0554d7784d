"""Worker handles and where new tesserae go."""

import itertools
from typing import NamedTuple

from ..errors import RuntimeDisconnectedError

__all__ = ['WorkerHandle', 'Workers', 'RoundRobin']


class WorkerHandle(NamedTuple):
    """A worker of the runtime.

    Attributes
    ----------
    uid : str
        ``'worker:<rank>'``.
    rank : int
        Its rank in the runtime's communicator.
    host : str
        The host it runs on: its ``MPI_Get_processor_name``, gathered from every rank at start-up
        (the head's handle, ``('head', 0, host)``, is what a worker-side task's
        ``remote_runtime`` is for a call the head made).
    """
    uid: str
    rank: int
    host: str = ''


class Workers(list):
    """The workers of a runtime (``runtime.workers``): a list of :class:`WorkerHandle` in rank
    order, which can also be filtered by host.

    Mosaic names a worker after its node (``worker:<node>:<i>``, and its ``RuntimeProxy`` has the
    node's ``address``); here uids stay ``worker:<rank>`` and each handle carries its ``host``.
    """

    @property
    def hosts(self):
        """list of str: the hosts that have workers, each once, in the order of their first
        worker's rank."""
        return list(dict.fromkeys(w.host for w in self))

    def on(self, host):
        """The workers on ``host``.

        Parameters
        ----------
        host : str
            A host name, as ``MPI_Get_processor_name`` gives it on that host (see :attr:`hosts`).

        Returns
        -------
        list of WorkerHandle
            In rank order; never empty.

        Raises
        ------
        ValueError
            If no worker runs on ``host`` (the message lists the hosts that have workers).
        """
        found = [w for w in self if w.host == host]
        if not found:
            where = '; '.join(f'{h}: {", ".join(w.uid for w in self if w.host == h)}'
                              for h in self.hosts)
            raise ValueError(f'no worker runs on host {host!r}; the workers\' hosts are '
                             f'{where or "none (no workers)"}')
        return found


class RoundRobin:
    """Places tesserae on workers in turn, or where the caller pins them.

    Parameters
    ----------
    workers : list of WorkerHandle
        The workers, in rank order.
    head : WorkerHandle, optional
        The head's handle (default ``WorkerHandle('head', 0)``, no host).
    """

    def __init__(self, workers, head=None):
        self.workers = list(workers)
        self.head = head if head is not None else WorkerHandle('head', 0)
        self._next = itertools.count()
        self.lost = set()       # ranks of lost workers (the client's set): skipped in turn

    @property
    def live(self):
        """list of WorkerHandle: the workers not lost, in rank order."""
        lost = self.lost
        return [w for w in self.workers if w.rank not in lost] if lost else self.workers

    def rank_of(self, where=None):
        """Rank for a new tessera.

        Parameters
        ----------
        where : WorkerHandle, str, int or None
            ``None`` for the next worker in turn (lost workers are skipped); otherwise a handle,
            a uid ``'worker:N'`` or a rank.

        Returns
        -------
        int
            A worker rank.

        Raises
        ------
        ValueError
            If ``where`` names no worker of this runtime.
        RuntimeDisconnectedError
            If ``where`` is ``None`` and every worker was lost.
        """
        if not self.workers:
            raise ValueError('this runtime has no workers')
        if where is None:
            workers = self._live_or_raise()
            return workers[next(self._next) % len(workers)].rank
        if isinstance(where, WorkerHandle):
            rank = where.rank
        elif isinstance(where, str) and where.startswith('worker:') and where[7:].isdigit():
            rank = int(where[7:])
        elif isinstance(where, int) and not isinstance(where, bool):
            rank = where
        else:
            raise ValueError(f'runtime= must be a worker handle, a uid like "worker:1" or a rank, '
                             f'not {where!r}')
        if rank not in {w.rank for w in self.workers}:
            raise ValueError(f'there is no worker:{rank}; workers are '
                             f'{", ".join(w.uid for w in self.workers)}')
        return rank

    def member_ranks(self, count):
        """Ranks of the ``count`` members of a tessera array: member i on worker i mod W (of
        the workers not lost).

        Raises
        ------
        RuntimeDisconnectedError
            If every worker was lost.
        """
        workers = self._live_or_raise()
        return [workers[i % len(workers)].rank for i in range(count)]

    def _live_or_raise(self):
        workers = self.live
        if not workers:
            raise RuntimeDisconnectedError(
                f'every worker was lost ({", ".join(w.uid for w in self.workers)}): there is no '
                f'worker left to place a tessera on')
        return workers
