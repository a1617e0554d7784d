"""A worker's output, line by line, prefixed with its name (S28).

Everything a worker rank writes to its standard output and error, from ``print``, ``logging``
or a C extension, goes through its file descriptors 1 and 2. :class:`OutputPrefixer` points
those descriptors at pipes (``os.dup2``) and a thread per pipe copies what arrives to the
original descriptors, each line starting with ``[worker:N] ``: the launcher forwards them to the
terminal as usual. ``sys.stdout`` and ``sys.stderr`` are not replaced. A line still incomplete
after 0.2 s (a progress bar redrawn with ``\\r``) is written as it is and continued without a
second prefix. :meth:`OutputPrefixer.stop` flushes everything and puts the descriptors back; the
worker calls it before it reports to the head that it has stopped.
"""

import fcntl
import os
import select
import signal
import sys
import termios
import threading
import time

__all__ = ['OutputPrefixer']

_PARTIAL_AFTER = 0.2        # s: an unfinished line is written out after this long without data
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Pipe:
    """One redirected descriptor: the pipe, the original descriptor, the copying thread."""

    def __init__(self, fd, prefix):
        self.fd = fd
        self.prefix = prefix
        self.original = os.dup(fd)
        self.read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        self.lock = threading.Lock()        # held while a chunk is being copied
        self.thread = threading.Thread(target=self._copy, name=f'mosaic-output-{fd}',
                                       daemon=True)
        self.thread.start()

    def _copy(self):
        if hasattr(signal, 'pthread_sigmask'):     # signals go to the main thread
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        pending = b''
        at_start = True
        while True:
            if pending:
                ready, _, _ = select.select([self.read_end], [], [], _PARTIAL_AFTER)
                if not ready:                     # an unfinished line: show it as it is
                    with self.lock:
                        self._write((self.prefix if at_start else b'') + pending)
                    pending, at_start = b'', False
                    continue
            try:
                chunk = os.read(self.read_end, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            with self.lock:
                *lines, pending = (pending + chunk).split(b'\n')
                if lines:
                    out = [(self.prefix if at_start else b'') + lines[0] + b'\n']
                    out += [self.prefix + line + b'\n' for line in lines[1:]]
                    self._write(b''.join(out))
                    at_start = True
        if pending:
            self._write((self.prefix if at_start else b'') + pending + b'\n')
        os.close(self.read_end)

    def _write(self, data):
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.original, view)
            except OSError:                       # the terminal went away: drop the output
                return
            view = view[written:]

    def unread(self):
        """Bytes written to the pipe and not yet copied."""
        try:
            return int.from_bytes(fcntl.ioctl(self.read_end, termios.FIONREAD, b'\0' * 4),
                                  sys.byteorder)
        except OSError:
            return 0

    def restore(self):
        """Point the descriptor back at its original target (ends the pipe's write side)."""
        os.dup2(self.original, self.fd)


class OutputPrefixer:
    """Prefix every line written to this process's descriptors 1 and 2.

    Parameters
    ----------
    name : str
        The prefix's name, e.g. ``'worker:2'``: lines read ``[worker:2] ...``.
    """

    def __init__(self, name):
        self.name = name
        self._pipes = []

    def start(self):
        """Redirect descriptors 1 and 2 (flushing Python's streams first)."""
        _flush_streams()
        prefix = f'[{self.name}] '.encode()
        self._pipes = [_Pipe(fd, prefix) for fd in (1, 2)]

    def drain(self, timeout=1.0):
        """Wait until what was written so far has been copied out (at most ``timeout`` s)."""
        _flush_streams()
        deadline = time.monotonic() + timeout
        for pipe in self._pipes:
            while pipe.unread() and time.monotonic() < deadline:
                time.sleep(0.001)
            with pipe.lock:                       # a chunk being copied is finished
                pass

    def write_now(self, text):
        """Write ``text`` to the original standard error at once, each line prefixed (for a
        message that must get out before the process is ended)."""
        pipe = self._pipes[1] if len(self._pipes) > 1 else None
        if pipe is None:
            sys.stderr.write(text)
            sys.stderr.flush()
            return
        lines = text.rstrip('\n').encode().split(b'\n')
        data = b''.join(pipe.prefix + line + b'\n' for line in lines)
        with pipe.lock:
            pipe._write(data)

    def stop(self, timeout=2.0):
        """Copy out what is left and put the descriptors back (idempotent).

        Parameters
        ----------
        timeout : float
            Seconds to wait for the copying threads (a child process that inherited the
            descriptors can keep a pipe open: its later output is then lost).
        """
        pipes, self._pipes = self._pipes, []
        if not pipes:
            return
        _flush_streams()
        for pipe in pipes:
            pipe.restore()
        deadline = time.monotonic() + timeout
        for pipe in pipes:
            pipe.thread.join(max(0.0, deadline - time.monotonic()))
            os.close(pipe.original)


def _flush_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
