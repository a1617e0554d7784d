"""A pool of large receive buffers.

A fresh ``np.empty`` of tens of MiB is backed by pages the kernel has not mapped yet, so the first
write into it (the MPI receive) pays a page fault per page: receiving into fresh memory runs at
about half the speed of receiving into memory used before. The pool keeps buffers whose arrays
have been freed and hands them out again, up to ``max_bytes`` in total.

A buffer is lent as a memoryview of a fresh ctypes array over a pooled block, and a
``weakref.finalize`` on the ctypes array returns the block once nothing refers to it any more:
arrays that numpy builds on the memoryview keep it (and so the ctypes array) as their base, for as
long as the user keeps them. A numpy view would not do: numpy collapses the base of a view of a
view to the array owning the memory, so the view could die while the user's array still used the
block; a memoryview of a ``PickleBuffer`` passes straight through to the array it wraps.
"""

import ctypes
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
        """A writeable buffer of ``size`` bytes (contents undefined).

        Returns
        -------
        target : numpy.ndarray
            1-d ``uint8`` array of length ``size``: receive into (slices of) it.
        lent : buffer-like
            The object to build the received objects on; the memory returns to the pool when it
            is no longer referenced.
        """
        if size < self.min_size or self.max_bytes == 0:
            buffer = np.empty(size, dtype=np.uint8)
            return buffer, buffer
        rounded = -(-size // _GRAIN) * _GRAIN
        block = None
        with self._lock:
            blocks = self._free.get(rounded)
            if blocks:
                block = blocks.pop()
                self._idle -= rounded
        if block is None:
            block = np.empty(rounded, dtype=np.uint8)
        exporter = (ctypes.c_char * rounded).from_buffer(block)
        weakref.finalize(exporter, self._give_back, block)
        return block[:size], memoryview(exporter).cast('B')[:size]

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
