"""Which peers are alive: heartbeats and silence, as plain state (no MPI, no clock of its own).

MPI does not tell a rank that another one died: a message to a dead rank just never completes,
and a launcher may leave the others running (hydra's ``-disable-auto-cleanup``, ``srun`` with
``--no-kill``). So every rank sends a small heartbeat to the peers it watches every
``interval`` seconds, and a peer from which nothing at all (heartbeat or any other packet) has
arrived for ``timeout`` seconds is declared lost. The head watches every worker; a worker
watches the head. The progress cycles feed this state (:meth:`Liveness.heard`,
:meth:`Liveness.tick`) and act on what it returns.
"""

__all__ = ['Liveness']


class Liveness:
    """Heartbeat bookkeeping of one rank.

    Parameters
    ----------
    peers : iterable of int
        Ranks to watch (and to send heartbeats to).
    interval : float
        Seconds between heartbeats to each peer.
    timeout : float
        Seconds of silence after which a peer is lost.
    now : float
        The current time (any monotonic clock, in seconds).

    Raises
    ------
    ValueError
        If ``timeout`` is not larger than ``interval``.
    """

    def __init__(self, peers, interval, timeout, now):
        if not timeout > interval > 0:
            raise ValueError(f'the heartbeat timeout ({timeout} s) must exceed its interval '
                             f'({interval} s)')
        self.interval = interval
        self.timeout = timeout
        self.last_heard = {rank: now for rank in peers}
        self.lost = {}              # rank -> seconds of silence when it was declared lost
        self._next_beat = now
        self._next_check = now

    def heard(self, rank, now):
        """Something arrived from ``rank``."""
        if rank in self.last_heard:
            self.last_heard[rank] = now

    def forget(self, rank):
        """Stop watching ``rank`` (it stopped normally)."""
        self.last_heard.pop(rank, None)

    @property
    def due(self):
        """float: the earliest time at which :meth:`tick` has something to do (a heartbeat or
        a check for silent peers); calling it earlier returns nothing."""
        return min(self._next_beat, self._next_check)

    def tick(self, now):
        """Advance to ``now``.

        Returns
        -------
        beat_to : list of int
            Peers to send a heartbeat to now.
        newly_lost : list of (int, float)
            Peers declared lost now, with their seconds of silence.
        """
        beat_to, newly_lost = [], []
        if now >= self._next_beat:
            beat_to = list(self.last_heard)
            self._next_beat = now + self.interval
        if now >= self._next_check:
            self._next_check = now + min(self.interval, self.timeout / 4)
            for rank, heard in list(self.last_heard.items()):
                silence = now - heard
                if silence > self.timeout:
                    del self.last_heard[rank]
                    self.lost[rank] = silence
                    newly_lost.append((rank, silence))
        return beat_to, newly_lost
