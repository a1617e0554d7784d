"""Worker handles and where new tesserae go."""

import itertools
from typing import NamedTuple

__all__ = ['WorkerHandle', 'RoundRobin']


class WorkerHandle(NamedTuple):
    """A worker of the runtime.

    Attributes
    ----------
    uid : str
        ``'worker:<rank>'``.
    rank : int
        Its rank in the runtime's communicator.
    """
    uid: str
    rank: int


class RoundRobin:
    """Places tesserae on workers in turn, or where the caller pins them.

    Parameters
    ----------
    workers : list of WorkerHandle
        The workers, in rank order.
    """

    def __init__(self, workers):
        self.workers = list(workers)
        self._next = itertools.count()

    def rank_of(self, where=None):
        """Rank for a new tessera.

        Parameters
        ----------
        where : WorkerHandle, str, int or None
            ``None`` for the next worker in turn; otherwise a handle, a uid ``'worker:N'`` or a rank.

        Returns
        -------
        int
            A worker rank.

        Raises
        ------
        ValueError
            If ``where`` names no worker of this runtime.
        """
        if not self.workers:
            raise ValueError('this runtime has no workers')
        if where is None:
            return self.workers[next(self._next) % len(self.workers)].rank
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
        """Ranks of the ``count`` members of a tessera array: member i on worker i mod W."""
        return [self.workers[i % len(self.workers)].rank for i in range(count)]
