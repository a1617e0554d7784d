"""One rank's runtime: the transport, the dispatch table, and the head's and workers' life cycles.

Rank 0 of the runtime's communicator is the *head*: it runs the user's ``main``. Every other rank
is a *worker*: it hosts tesserae until the head stops the run.
"""

import asyncio
import logging
import os
import signal
import sys
import threading

from ..comms import Transport, abort_world, mpi_world
from ..messages import Call, Completed, CreateTessera, Drop, Fetch, Stop, Stopped, Value
from .client import Client, LoopBridge, Requests
from .loop import new_event_loop
from .placement import RoundRobin, WorkerHandle
from .warehouse import Warehouse
from .worker import Worker

__all__ = ['Runtime']

_log = logging.getLogger('mosaic_mpi')


class Runtime:
    """The runtime of this rank, as passed to ``main``.

    Parameters
    ----------
    config : Config
        Settings.
    first_id : int
        First counter of the ids this rank makes (see :class:`~.client.Client`).
    detach : callable, optional
        Called once the transport has closed at the end of the run (spawned runs: disconnect
        from the other side, see :mod:`mosaic_mpi.startup`).

    Attributes
    ----------
    uid : str
        ``'head'`` on rank 0, ``'worker:<rank>'`` elsewhere.
    rank : int
        This rank in the runtime's communicator.
    num_workers : int
        Number of workers (communicator size - 1).
    workers : list of WorkerHandle
        The workers, in rank order.
    comm : mpi4py.MPI.Intracomm
        The communicator the runtime was started on (the application's; the runtime itself talks
        on a private duplicate of it).
    logger : logging.Logger
        The ``mosaic_mpi`` logger.

    Raises
    ------
    ValueError
        If the communicator has fewer than 2 ranks.
    """

    def __init__(self, config, first_id=1, detach=None):
        self.config = config
        self._detach = detach
        self.comm = config.comm if config.comm is not None else mpi_world()
        if self.comm.Get_size() < 2:
            raise ValueError('mosaic_mpi needs at least 2 ranks (1 head + 1 worker): start the '
                             'script with `mpiexec -n N python script.py`, N >= 2')
        self.logger = _log
        self.transport = Transport(self.comm, self._dispatch, max_chunk=config.max_chunk,
                                   spin_time=config.spin_time, max_sleep=config.max_sleep,
                                   buffer_pool=config.buffer_pool)
        self.rank = self.transport.rank
        self.uid = 'head' if self.rank == 0 else f'worker:{self.rank}'
        self.workers = [WorkerHandle(f'worker:{r}', r) for r in range(1, self.transport.size)]
        self.num_workers = len(self.workers)
        self.bridge = LoopBridge()
        self.requests = Requests(self.rank, first_id)
        self.warehouse = Warehouse()
        self.client = Client(self.rank, self.transport, self.bridge, self.requests,
                             RoundRobin(self.workers), config.oob_threshold, first_id)
        self.worker = None
        self._stopped_acks = set()
        self._all_stopped = threading.Event()
        self.running = True
        if self.rank != 0:
            self.loop = new_event_loop(self.transport)
            self.worker = Worker(self.rank, self.transport, self.bridge, self.requests,
                                 self.warehouse, config.oob_threshold, self.loop)
        table = {Completed: self.client.on_completed, Value: self._on_value, Stopped: self._on_stopped}
        if self.worker is not None:
            table.update({CreateTessera: self.worker.on_create,
                          Call: self.worker.on_call, Stop: self.worker.on_stop,
                          Fetch: self.worker.on_fetch, Drop: self.worker.on_drop})
        self._table = table
        self.transport.add_idle_hook(self.client.flush_drops)
        self.transport.start()
        _log.debug('%s: started, rank %d of %d', self.uid, self.rank, self.transport.size)

    @property
    def is_head(self):
        """bool: whether this rank is the head."""
        return self.rank == 0

    # -- progress thread -------------------------------------------------------------------------

    def _dispatch(self, batch):
        table = self._table
        for source, record in batch:
            table[type(record)](source, record)
        self.bridge.flush()

    def _on_value(self, source, record):
        self.requests.pop(record.request_id)(record)

    def _on_stopped(self, source, record):
        self._stopped_acks.add(record.rank)
        if len(self._stopped_acks) == self.num_workers:
            self._all_stopped.set()

    # -- head --------------------------------------------------------------------------------------

    async def barrier(self):
        """Wait until every task this rank submitted so far has finished."""
        await self.client.barrier()

    def stop(self, code=0, drain=True, timeout=10.0, reason=''):
        """Stop every worker and this rank's transport (head only; idempotent).

        Parameters
        ----------
        code : int
            Exit code the workers end with.
        drain : bool
            Wait first for every task the head submitted to finish, and let workers end
            normally. Without it (the run failed), workers end their process at once, even in the
            middle of a task.
        timeout : float
            Seconds to wait for the workers to acknowledge. Past it (a worker busy in a long
            task cannot answer) ``reason`` and a message naming the workers are printed on stderr
            and the whole job ends with ``MPI_Abort(code or 1)``.
        reason : str
            Why the run ends early (the formatted exception of ``main``), printed before an abort.
        """
        if not self.running:
            return
        self.running = False
        if drain:
            _log.debug('head: waiting for %d outstanding tasks', self.client.outstanding)
            self.client.drain()
        _log.debug('head: stopping %d workers', self.num_workers)
        self.client.closed = True          # nothing may follow Stop (e.g. late Drops)
        for worker in self.workers:
            self.transport.send(worker.rank, Stop(code, now=not drain))
        if not self._all_stopped.wait(timeout):
            missing = sorted({w.rank for w in self.workers} - self._stopped_acks)
            message = (f'mosaic_mpi: worker(s) {", ".join(f"worker:{r}" for r in missing)} did '
                       f'not stop within {timeout:g} s (still running a task): ending the job\n')
            _log.critical(message.strip())
            sys.stderr.write(reason + message)
            sys.stderr.flush()
            abort_world(code or 1)
        _log.debug('head: every worker stopped; closing the transport')
        if not self.transport.close():
            _log.warning('head: the progress thread did not end in time')
        elif self._detach is not None:
            self._detach()
        _log.debug('head: stopped')

    # -- worker ------------------------------------------------------------------------------------

    def serve(self):
        """Host tesserae until the head says stop (worker only).

        Returns
        -------
        int
            The exit code the head asked for.
        """
        asyncio.set_event_loop(self.loop)
        interrupted = False
        try:
            code = self.loop.run_until_complete(self.worker.stopped)
        except KeyboardInterrupt:
            # A second Ctrl-C (the launcher forwards its own) must not cut the clean-up short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if self.worker.stop_code is not None:     # the head ended a failed run
                code = self.worker.stop_code
            else:                                     # Ctrl-C reaches every rank: end quietly
                code, interrupted = 130, True
        finally:
            self.running = False
            for task in asyncio.all_tasks(self.loop):  # async methods cut short by a failed run
                task.cancel()
            _log.debug('%s: stopping', self.uid)
            clean = self.transport.close(1.0 if interrupted else 10.0)
            self.loop.close()
            if clean and not interrupted and self._detach is not None:
                self._detach()
            _log.debug('%s: stopped', self.uid)
        if interrupted or not clean:
            # Interrupted, or a send to a rank that has already stopped (it can never complete,
            # and MPI_Finalize would wait for it): end the process now rather than hang.
            if not clean:
                _log.warning('%s: unfinished sends at stop; exiting without MPI_Finalize',
                             self.uid)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
