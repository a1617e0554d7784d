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
import time

from ..comms import Transport, abort_world, mpi_world, spawn as mpi_spawn
from ..errors import CollectiveError
from ..logs import MosaicLogger
from ..messages import id_run, make_id
from ..messages import (Ask, Beat, Broadcasted, Call, CallArray, Completed, CompletedMany,
                        CreateTessera, Cycle, Drop, DropObject, Fetch, JoinGroup, Lost, Probe,
                        Publish, PublishRequest, Published, Query, Refs, Stop, Stopped, Value)
from . import coordination
from .bridge import LoopBridge, Requests
from .client import Client
from .loop import new_event_loop
from .objects import Objects
from .output import OutputPrefixer
from .timeline import Timeline, chrome_trace, write_chrome_trace
from .placement import RoundRobin, WorkerHandle, Workers
from .warehouse import Warehouse
from .worker import Worker

__all__ = ['Runtime']

_log = logging.getLogger('mosaic_mpi')
# s without any task finishing, at the end of a run, before a collective array's call that a
# failed member left stuck (Client.drain) ends the job; and the workers' grace then
_STUCK_AFTER = 10.0
_STUCK_GRACE = 3.0


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
    workers : Workers
        The workers, in rank order (a list of :class:`~.placement.WorkerHandle`, each with its
        ``host``); ``runtime.workers.on(host)`` lists those on one host,
        ``runtime.workers.hosts`` the hosts that have workers.
    host : str
        The host this rank runs on (``MPI_Get_processor_name``).
    hosts : list of str
        Every rank's host, by rank (gathered from all ranks at start-up).
    comm : mpi4py.MPI.Intracomm
        The communicator the runtime was started on (the application's; the runtime itself talks
        on a private duplicate of it).
    logger : MosaicLogger
        The ``mosaic_mpi`` logger, with Mosaic's ``perf`` and ``warn`` besides the standard
        methods.
    warehouse : Warehouse
        This rank's store of task results and warehouse objects.
    objects : Objects
        This rank's side of the warehouse objects (:meth:`put`, :meth:`get`, :meth:`drop`).

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
        self.logger = MosaicLogger(_log)
        self.transport = Transport(self.comm, self._dispatch, max_chunk=config.max_chunk,
                                   spin_time=config.spin_time, max_sleep=config.max_sleep,
                                   buffer_pool=config.buffer_pool)
        self.rank = self.transport.rank
        self.uid = 'head' if self.rank == 0 else f'worker:{self.rank}'
        self.output = None
        if self.rank != 0 and config.output_prefix:
            self.output = OutputPrefixer(self.uid)
            self.output.start()
            self.transport.on_fatal = self._fatal
        self.hosts = mpi_spawn.processor_names(self.transport.comm)   # before progress starts
        self.host = self.hosts[self.rank]
        self.workers = Workers(WorkerHandle(f'worker:{r}', r, self.hosts[r])
                               for r in range(1, self.transport.size))
        self.num_workers = len(self.workers)
        self.bridge = LoopBridge()
        self.requests = Requests(self.rank, first_id)
        self.warehouse = Warehouse()
        self.client = Client(self.rank, self.transport, self.bridge, self.requests,
                             RoundRobin(self.workers, WorkerHandle('head', 0, self.hosts[0])),
                             config.oob_threshold, config.max_pending,
                             first_id)
        self.objects = Objects(self.rank, self.transport.size, self.transport, self.bridge,
                               self.requests, self.warehouse, self.client.new_id,
                               config.oob_threshold)
        self.worker = None
        self._in_async_for = False
        self._stopped_acks = set()
        self._all_stopped = threading.Event()
        self.running = True
        if self.rank != 0:
            self.loop = new_event_loop(self.transport)
            self.worker = Worker(self.rank, self.transport, self.bridge, self.requests,
                                 self.warehouse, config.oob_threshold, self.loop,
                                 run=id_run(make_id(0, first_id)))
            self.worker.output = self.output
            self.worker.objects = self.objects
            self.worker.value_arrived = self.client.value_arrived
        self.timeline = Timeline(self.rank) if config.trace else None
        self.client.timeline = self.timeline
        if self.worker is not None:
            self.worker.timeline = self.timeline
        table = {Completed: self.client.on_completed, CompletedMany: self.client.on_completed_many,
                 Value: self._on_value,
                 Stopped: self._on_stopped, Beat: _ignore, Lost: self._on_lost_record,
                 Refs: self.client.refs.on_refs}
        table.update({Fetch: self.objects.on_fetch, DropObject: self.objects.on_drop,     # warehouse
                      Published: self.objects.on_published, PublishRequest:
                      self.objects.on_publish_request, Broadcasted: self.objects.on_broadcasted})
        if self.worker is not None:
            table.update({CreateTessera: self.worker.on_create,
                          Call: self.worker.on_call, CallArray: self.worker.on_call_array,
                          Stop: self._on_stop,
                          Fetch: self.worker.on_fetch, Drop: self.worker.on_drop,
                          Query: self._on_query, Publish: self.objects.on_publish,
                          Probe: self.worker.on_probe, Cycle: self.worker.on_cycle,
                          JoinGroup: self.worker.on_join_group})
            self.client.cycles = self.worker.cycles
        self._table = table
        self.transport.add_idle_hook(self.client.refs.flush)
        self.transport.add_idle_hook(self.client.flush_drops)
        if self.worker is not None:
            self.transport.add_busy_hook(self.worker.flush_held)
        if config.heartbeat_timeout:
            _survive_peer_failure_signal()
            peers = [w.rank for w in self.workers] if self.rank == 0 else [0]
            self.transport.watch(peers, config.heartbeat, config.heartbeat_timeout, Beat(),
                                 self._on_peer_lost)
        self.transport.start()
        _log.debug('%s: started, rank %d of %d', self.uid, self.rank, self.transport.size)

    @property
    def is_head(self):
        """bool: whether this rank is the head."""
        return self.rank == 0

    @property
    def is_worker(self):
        """bool: whether this rank is a worker."""
        return self.rank != 0

    def get_event_loop(self):
        """The event loop this rank's code runs on (the running one; a worker's own loop).

        Returns
        -------
        asyncio.AbstractEventLoop
        """
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            if self.worker is not None:
                return self.loop
            raise RuntimeError('no event loop is running on the head: call this from async code '
                               '(inside main)') from None

    def get_workers(self):
        """dict: the workers' handles by uid (``'worker:1'`` -> WorkerHandle)."""
        return {w.uid: w for w in self.workers}

    def get_worker(self, uid):
        """The handle of the worker ``uid``.

        Raises
        ------
        KeyError
            If there is no such worker.
        """
        workers = self.get_workers()
        if uid not in workers:
            raise KeyError(f'there is no {uid}; workers are {", ".join(workers)}')
        return workers[uid]

    # -- progress thread -------------------------------------------------------------------------

    def _dispatch(self, batch):
        table = self._table
        for source, record in batch:
            table[type(record)](source, record)
        self.bridge.flush()

    def _on_stop(self, source, record):
        self.client.refs.close()        # no reference update may follow Stopped
        self.worker.on_stop(source, record)

    def _on_value(self, source, record):
        handler = self.requests.pop(record.request_id)
        if handler is not None:
            handler(record)

    def _on_query(self, source, record):
        kind = record.kind
        if kind is Ask.BARRIER:
            self.bridge.post(self.loop, coordination.answer_barrier, self, record)
        elif kind is Ask.CLOCK:
            self.worker.reply(record, True, time.time())
        elif kind is Ask.TRACE:
            export = self.timeline.export() if self.timeline is not None else None
            self.bridge.post(self.loop, self.worker.reply, record, True, export)
        else:
            self.worker.on_query(source, record)

    def _on_stopped(self, source, record):
        self._stopped_acks.add(record.rank)
        self.transport.unwatch(record.rank)
        if self._stopped_acks | self.client.lost >= {w.rank for w in self.workers}:
            self._all_stopped.set()

    def _fatal(self, message):
        """The runtime failed on this rank: show what was printed and ``message``, end the job."""
        if self.output is not None:
            self.output.drain(1.0)
            self.output.write_now(message)  # straight to the terminal, prefixed: not lost
        else:
            sys.stderr.write(message)
            sys.stderr.flush()
        # The launcher forwards this rank's output through a proxy that the abort may end
        # before the message is out (MPICH's mpiexec returned first in a local run, and the
        # message was missing once in CI): give it a moment.
        time.sleep(0.5)
        abort_world(1)

    def _on_peer_lost(self, rank, silence):
        """A peer fell silent (in a progress cycle): the head fails what waited on it."""
        reason = f'no message for {silence:.1f} s: the process died, or hangs'
        if self.rank != 0:
            _log.critical('%s: lost the head (%s): exiting', self.uid, reason)
            sys.stderr.write(f'mosaic_mpi: {self.uid} lost the head ({reason}): exiting\n')
            if self.output is not None:
                self.output.stop(0.5)
            sys.stderr.flush()
            os._exit(1)
        labels = self.client.lose(rank, reason)
        running = ', '.join(labels) if labels else 'none'
        message = (f'mosaic_mpi: worker:{rank} (rank {rank}) was lost ({reason}); tasks of the '
                   f'head that were on it: {running}')
        _log.critical(message)
        sys.stderr.write(message + '\n')
        sys.stderr.flush()
        for worker in self.workers:
            if worker.rank not in self.client.lost:
                self.transport.send(worker.rank, Lost(rank, silence))
        if self._stopped_acks | self.client.lost >= {w.rank for w in self.workers}:
            self._all_stopped.set()
        if self.config.worker_lost == 'abort':
            watchdog = threading.Timer(self.config.heartbeat_timeout, self._end_after_loss)
            watchdog.daemon = True
            watchdog.start()

    def _end_after_loss(self):
        if self.running:
            message = ('mosaic_mpi: ending the job: a worker was lost and main did not end '
                       '(set worker_lost="continue" to carry on without it)')
            _log.critical(message)
            sys.stderr.write(message + '\n')
            sys.stderr.flush()
            abort_world(1)

    def _on_lost_record(self, source, record):
        """The head says a worker was lost: fail what this worker waits for from it."""
        self.client.lose(record.rank, f'reported by the head: no message for '
                                      f'{record.silence:.1f} s')

    # -- warehouse (runtime/objects.py) -----------------------------------------------------------

    async def put(self, obj, publish=False):
        """Store ``obj`` in the warehouse; returns a reference to it.

        The value stays on this rank (head or worker: ``put`` works inside a tessera's method
        too). Passed as a top-level argument of a call, the reference arrives as the value;
        nested in a container, as the reference. Two puts of one object make two references.

        Parameters
        ----------
        obj : object
            The value (kept as it is, not copied, on this rank).
        publish : bool
            Also copy it to every rank, with one MPI broadcast, before returning: reads of the
            reference are then local everywhere.

        Returns
        -------
        WarehouseObject

        Raises
        ------
        SerialisationError
            With ``publish``, if ``obj`` cannot be pickled.
        """
        return await self.objects.put(obj, publish)

    async def get(self, ref, cache=True):
        """The value of a warehouse reference (``await ref.value()`` is the same).

        Parameters
        ----------
        ref : WarehouseObject or str
            A reference, or its uid.
        cache : bool
            Accepted for Mosaic's signature; no effect: a rank that holds a copy (the owner, or
            any rank once published) reads it locally, and nothing else is cached.

        Returns
        -------
        object

        Raises
        ------
        KeyError
            At once if it was dropped (or its owner does not know it).
        TypeError
            If ``ref`` is not a reference or uid.
        ValueError
            If ``ref`` is a malformed uid or names a rank outside this runtime.
        """
        return await self.objects.get(ref)

    async def drop(self, ref, cache_only=False, propagate=False):
        """Remove a warehouse value from every rank (``await ref.drop()`` is the same).

        Returns when every rank has forgotten it; later reads anywhere raise ``KeyError``.

        Parameters
        ----------
        ref : WarehouseObject or str
            A reference, or its uid.
        cache_only : bool
            Mosaic's "only forget the local cached copy": there is no such cache here, so
            ``True`` does nothing (the value and published copies stay).
        propagate : bool
            Accepted for Mosaic's signature; a drop always reaches the owner and every copy.

        Raises
        ------
        TypeError, ValueError
            As for :meth:`get`.
        """
        if not cache_only:
            await self.objects.drop(ref)

    # -- head --------------------------------------------------------------------------------------

    async def barrier(self, timeout=None):
        """Wait until every task submitted so far has finished (S25).

        On the head: every task submitted by any rank (the head's calls and the workers'
        actor-to-actor calls), checked in waves (see :mod:`.coordination`); failed tasks count as
        finished (their errors are not raised here). On a worker: the tasks that worker submitted.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most.

        Raises
        ------
        asyncio.TimeoutError
            If ``timeout`` passed first.
        """
        await coordination.barrier(self, timeout)

    def async_for(self, *iterables, safe=True, timeout=None, progress=False):
        """Decorator running an ``async def body(worker, *item)`` per item, one item per worker
        at a time; ``await`` the decorated name for the results (in item order).

        See :func:`mosaic_mpi.runtime.coordination.async_for` for the parameters, the order of
        results and how errors end the loop.
        """
        return coordination.async_for(self, *iterables, safe=safe, timeout=timeout,
                                      progress=progress)

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

        Raises
        ------
        CollectiveError
            When draining, if no task finished for ``_STUCK_AFTER`` (10) s while a call on a
            collective array had a failed member and members still waiting in a collective for
            it: the workers are then stopped as after a failed run (exit code 1), and this says
            which call it was.
        """
        if not self.running:
            return
        self.running = False
        stuck = None
        if drain:
            _log.debug('head: waiting for %d outstanding tasks', self.client.outstanding)
            stuck = self.client.drain(stuck_after=_STUCK_AFTER)
            if stuck is not True:
                # A collective array's call whose failed member left the others in a collective
                # (main caught the error and returned): the drain would wait for ever.
                message = (f'mosaic_mpi: the run cannot end normally: {stuck}; ending the '
                           f'job\n')
                _log.critical(message.strip())
                sys.stderr.write(message)
                sys.stderr.flush()
                stuck = CollectiveError(message.strip())
                code, drain, timeout = code or 1, False, min(timeout, _STUCK_GRACE)
            else:
                stuck = None
        if self.timeline is not None:
            self._write_trace()
        _log.debug('head: stopping %d workers', self.num_workers)
        self.client.closed = True          # nothing may follow Stop (e.g. late Drops)
        self.transport.unwatch()
        lost = set(self.client.lost)
        for worker in self.workers:
            if worker.rank not in lost:
                self.transport.send(worker.rank, Stop(code, now=not drain))
        if not self._all_stopped.wait(timeout):
            missing = sorted({w.rank for w in self.workers} - self._stopped_acks - lost)
            message = (f'mosaic_mpi: worker(s) {", ".join(f"worker:{r}" for r in missing)} did '
                       f'not stop within {timeout:g} s (still in a task, or in a large transfer): '
                       f'ending the job\n')
            _log.critical(message.strip())
            sys.stderr.write(reason + message)
            sys.stderr.flush()
            abort_world(code or 1)
        if lost:
            # MPI cannot finalise with a rank gone: end the job here, non-zero.
            message = (f'mosaic_mpi: ending the job with code {code or 1}: '
                       f'{", ".join(f"worker:{r}" for r in sorted(lost))} lost during the run\n')
            _log.critical(message.strip())
            sys.stderr.write(reason + message)
            sys.stderr.flush()
            abort_world(code or 1)
        _log.debug('head: every worker stopped; closing the transport')
        self.client.queued_calls.drained()      # a failed run may leave calls outstanding
        self.warehouse.stored.drained()
        if not self.transport.close():
            _log.warning('head: the progress thread did not end in time')
        elif self._detach is not None:
            self._detach()
        _log.debug('head: stopped')
        if stuck is not None:
            raise stuck

    def _write_trace(self):
        """Collect every worker's timeline, on the head's clock, into ``config.trace``."""
        try:
            exports, offsets = [self.timeline.export()], {0: 0.0}
            for worker in self.workers:
                best = None
                for _ in range(5):              # the fastest exchange bounds the error best
                    sent = time.time()
                    remote = self.client.ask_blocking(worker.rank, Ask.CLOCK)
                    back = time.time()
                    if best is None or back - sent < best[0]:
                        best = (back - sent, remote - (sent + back) / 2)
                offsets[worker.rank] = best[1]
                exports.append(self.client.ask_blocking(worker.rank, Ask.TRACE))
            write_chrome_trace(self.config.trace, chrome_trace([e for e in exports if e],
                                                               offsets))
            _log.info('head: task timeline written to %s', self.config.trace)
        except Exception as exc:            # a trace must not turn a good run into a failed one
            _log.error('head: could not write the task timeline to %s: %s: %s',
                       self.config.trace, type(exc).__name__, exc)
            sys.stderr.write(f'mosaic_mpi: could not write the task timeline to '
                             f'{self.config.trace}: {type(exc).__name__}: {exc}\n')

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
            stuck = self.worker.collective_busy     # a member still inside a collective
            if self.worker.collective is not None:
                self.worker.collective.close()
            clean = self.transport.close(1.0 if interrupted else 10.0) and not stuck
            self.client.queued_calls.drained()
            self.warehouse.stored.drained()
            self.loop.close()
            if clean and not interrupted and self._detach is not None:
                self._detach()
            _log.debug('%s: stopped', self.uid)
            if self.output is not None:
                self.output.stop()
        if interrupted or not clean:
            # Interrupted, or a send to a rank that has already stopped (it can never complete,
            # and MPI_Finalize would wait for it): end the process now rather than hang.
            if stuck:
                _log.warning('%s: a collective array\'s method is still running (waiting in a '
                             'collective for members that will not join it); exiting without '
                             'MPI_Finalize', self.uid)
            elif not clean:
                _log.warning('%s: unfinished sends at stop; exiting without MPI_Finalize',
                             self.uid)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code


def _ignore(source, record):
    """Heartbeats need no handling: that they arrived is what counts (see comms.liveness)."""


def _survive_peer_failure_signal():
    """Hydra (MPICH's mpiexec) with ``-disable-auto-cleanup`` tells the surviving ranks that one
    died with SIGUSR1, whose default action ends the process: ignore it (unless the application
    handles it), so that the head lives to report the loss (heartbeats notice it)."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
