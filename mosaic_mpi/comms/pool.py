"""A pool of large receive buffers.

A fresh ``np.empty`` of tens of MiB is backed by pages the kernel has not mapped yet, so the first
write into it (the MPI receive) pays a page fault per page: receiving into fresh memory runs at
about half the speed of receiving into memory used before. The pool keeps buffers whose arrays
have been freed and hands them out again, up to ``max_bytes`` in total.

A buffer is lent as a view of a pooled block; a ``weakref.finalize`` on the view returns the block
once nothing refers to the view any more (the user's array, built on it without a copy, keeps it
alive for as long as the user keeps the array).
"""

import threading
import weakref

import numpy as np

__all__ = ['BufferPool']

_GRAIN = 1 << 20


class BufferPool:
    """Receive buffers of at least ``min_size`` bytes, reused once their arrays are freed.

    Parameters
    ----------
    max_bytes : int
        Most bytes kept idle in the pool; 0 disables pooling.
    min_size : int
        Smaller buffers are plain ``np.empty`` (bytes).
    """

    def __init__(self, max_bytes=512 << 20, min_size=_GRAIN):
        self.max_bytes = max_bytes
        self.min_size = min_size
        self._lock = threading.Lock()
        self._free = {}
        self._idle = 0

    @property
    def idle_bytes(self):
        """int: bytes held in the pool, ready for reuse."""
        return self._idle

    def take(self, size):
        """A writeable ``uint8`` buffer of ``size`` bytes (contents undefined).

        Returns
        -------
        numpy.ndarray
            1-d ``uint8`` array of length ``size``.
        """
        if size < self.min_size or self.max_bytes == 0:
            return np.empty(size, dtype=np.uint8)
        rounded = -(-size // _GRAIN) * _GRAIN
        block = None
        with self._lock:
            blocks = self._free.get(rounded)
            if blocks:
                block = blocks.pop()
                self._idle -= rounded
        if block is None:
            block = np.empty(rounded, dtype=np.uint8)
        view = block[:size]
        weakref.finalize(view, self._give_back, block)
        return view

    def _give_back(self, block):
        with self._lock:
            if self._idle + block.nbytes <= self.max_bytes:
                self._free.setdefault(block.nbytes, []).append(block)
                self._idle += block.nbytes

    def clear(self):
        """Drop every idle buffer."""
        with self._lock:
            self._free.clear()
            self._idle = 0
