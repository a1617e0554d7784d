"""Keep the cyclic garbage collector off the records of queued calls.

Every call a rank has submitted and not yet seen finish keeps a few GC-tracked objects alive on
it (its ``TaskProxy``, ``TaskState``, and the ``Call`` record until it is sent). CPython's
collector scans every tracked object in each full collection, so with a million calls queued each
collection walks millions of records that are anything but garbage: the cost per call rose with
the queue (bench/README.md, *Pipelined throughput*), and one such collection on a loaded machine
held the head's GIL for longer than the heartbeat timeout.

While many calls are queued, :class:`QueuedCalls` moves the tracked objects alive at that moment
into the collector's permanent generation (``gc.freeze``) once per ``step`` submitted calls, and
puts them back (``gc.unfreeze``, into the oldest generation) as soon as no call is outstanding any
more, or the runtime stops. Frozen objects are only skipped by collections: reference counting
frees them as usual, and cyclic garbage among them is collected after the unfreeze. An
application that uses ``gc.freeze`` itself (before forking) finds its frozen objects unfrozen at
that point.
"""

import gc

__all__ = ['QueuedCalls']


class QueuedCalls:
    """Freeze the collector's view of long queues of calls (see the module docstring).

    Parameters
    ----------
    step : int
        Calls submitted between two freezes, and the fewest outstanding calls at which one
        happens.
    """

    __slots__ = ('step', 'frozen', 'freezes', '_next')

    def __init__(self, step=1 << 16):
        self.step = step
        self.frozen = False
        self.freezes = 0            # how often it froze (for tests and benchmarks)
        self._next = step

    def submitted(self, submitted, outstanding):
        """A call was submitted (``submitted`` so far, ``outstanding`` not finished)."""
        if submitted >= self._next:
            self._next = submitted + self.step
            if outstanding >= self.step:
                gc.freeze()
                self.frozen = True
                self.freezes += 1

    def drained(self):
        """No call is outstanding any more (or the runtime stops): collect as usual again."""
        if self.frozen:
            self.frozen = False
            gc.unfreeze()
