"""The task timeline (S30): what ran where and when, written as a Chrome Trace Event file.

With ``trace='trace.json'`` (or ``MOSAIC_MPI_TRACE``) every rank keeps a :class:`Timeline`. The
caller notes when each call was submitted; the worker notes when it arrived, started and
finished, the bytes that came in (arguments, dependencies fetched from other ranks) and went out
(results fetched by other ranks), and the ``add_event`` / ``add_profile`` records of its
:class:`~mosaic_mpi.core.task.Task`. At the end of the run the head asks every worker for its
clock (NTP-style: offset = remote time - midpoint of the request, from the fastest of a few
exchanges; D. L. Mills, RFC 5905) and its records, shifts them onto the head's clock and writes
one file in the Chrome Trace Event format (``"ph": "X"`` complete events; opens in Perfetto and
``chrome://tracing``). ``python -m mosaic_mpi.trace trace.json -o timeline.png`` draws it.

When tracing is off, no :class:`Timeline` exists and the hot paths test one attribute.
"""

import json
import os
import time

__all__ = ['Timeline', 'chrome_trace', 'write_chrome_trace']


class Timeline:
    """One rank's trace records (plain lists and dicts; read and written on one thread each)."""

    def __init__(self, rank):
        self.rank = rank
        self.submitted = {}         # task id -> wall time the call was made (caller side)
        self.records = []           # finished tasks (worker side)
        self.by_task = {}           # task id -> its record (to count result bytes sent later)
        self.proxy_events = []      # add_event records made on task proxies (caller side)

    # -- caller side -------------------------------------------------------------------------

    def submit(self, task_id):
        """A call was made on this rank."""
        self.submitted[task_id] = time.time()

    # -- worker side ---------------------------------------------------------------------------

    @staticmethod
    def arrive(task, nbytes):
        """A call arrived (its arguments, in band and out of band, are ``nbytes``)."""
        task.trace = {'arrived': time.time(), 'bytes_in': nbytes, 'bytes_out': 0}

    @staticmethod
    def fetched(task, nbytes):
        """A dependency of ``task`` came from another rank."""
        trace = getattr(task, 'trace', None)
        if trace is not None:
            trace['bytes_in'] += nbytes

    @staticmethod
    def start(task):
        """The method starts."""
        trace = getattr(task, 'trace', None)
        if trace is not None:
            trace['started'] = time.time()

    def finish(self, task, name, failed):
        """The method ended (``name``: the tessera's class); its record joins the timeline."""
        trace = getattr(task, 'trace', None)
        if trace is None:
            return
        now = time.time()
        trace.update(task=task.uid, tessera=task.tessera_id, cls=name, method=task.method,
                     caller=task.sender, rank=self.rank, finished=now, failed=failed,
                     events=[(t, kind, str(name), _plain(data))
                             for t, kind, name, data in (task.events or ())])
        trace.setdefault('started', now)
        self.records.append(trace)
        self.by_task[task.uid] = trace

    def sent(self, task_id, nbytes):
        """(Part of) the result of task ``task_id`` was sent to another rank (``nbytes``)."""
        trace = self.by_task.get(task_id)
        if trace is not None:
            trace['bytes_out'] += nbytes

    def export(self):
        """What this rank sends the head: its records and proxy events (picklable)."""
        return {'rank': self.rank, 'records': list(self.records),
                'submitted': dict(self.submitted), 'proxy_events': list(self.proxy_events)}


def _plain(data):
    """``data`` with values JSON can hold (others as their repr)."""
    out = {}
    for key, value in (data or {}).items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[str(key)] = value
        else:
            out[str(key)] = repr(value)
    return out


def chrome_trace(exports, offsets, names=None):
    """Merge ranks' exports into Chrome Trace Event records on the head's clock.

    Parameters
    ----------
    exports : list of dict
        :meth:`Timeline.export` of every rank (the head's included).
    offsets : dict
        ``rank -> seconds`` to subtract from that rank's times (its clock minus the head's).
    names : dict, optional
        ``rank -> name`` for the process rows (default ``'head'`` / ``'worker:N'``).

    Returns
    -------
    dict
        ``{"traceEvents": [...], "displayTimeUnit": "ms", "metadata": {...}}``; times in
        microseconds from the first submission.
    """
    submitted = {}                              # task id -> submission time, head's clock
    for export in exports:
        shift = offsets.get(export['rank'], 0.0)
        for task_id, t in export['submitted'].items():
            submitted[task_id] = t - shift
    records = [(export['rank'], r) for export in exports for r in export['records']]
    starts = [r['arrived'] - offsets.get(rank, 0.0) for rank, r in records]
    starts += list(submitted.values())
    origin = min(starts) if starts else time.time()

    def us(t, rank):
        return round((t - offsets.get(rank, 0.0) - origin) * 1e6, 3)

    events = []
    ranks = sorted({export['rank'] for export in exports})
    for rank in ranks:
        label = (names or {}).get(rank, 'head' if rank == 0 else f'worker:{rank}')
        events.append({'name': 'process_name', 'ph': 'M', 'pid': rank, 'tid': 0,
                       'args': {'name': label}})
        events.append({'name': 'process_sort_index', 'ph': 'M', 'pid': rank, 'tid': 0,
                       'args': {'sort_index': rank}})
    lanes = {}
    for rank, r in sorted(records, key=lambda item: item[1]['started']):
        key = (rank, r['tessera'])
        if key not in lanes:
            lanes[key] = tid = len([k for k in lanes if k[0] == rank]) + 1
            events.append({'name': 'thread_name', 'ph': 'M', 'pid': rank, 'tid': tid,
                           'args': {'name': f'{r["cls"]}({r["tessera"]})'}})
        tid = lanes[key]
        start = us(r['started'], rank)
        args = {'task': r['task'], 'tessera': r['tessera'], 'caller': r['caller'],
                'bytes_in': r['bytes_in'], 'bytes_out': r['bytes_out'], 'failed': r['failed'],
                'queued_us': round((r['started'] - r['arrived']) * 1e6, 3)}
        if r['task'] in submitted:
            args['submitted_us'] = round((submitted[r['task']] - origin) * 1e6, 3)
        events.append({'name': f'{r["cls"]}.{r["method"]}',
                       'cat': 'failed' if r['failed'] else 'task',
                       'ph': 'X', 'ts': start, 'dur': max(0.0, us(r['finished'], rank) - start),
                       'pid': rank, 'tid': tid, 'args': args})
        for t, kind, name, data in r['events']:
            events.append({'name': name, 'cat': kind, 'ph': 'i', 's': 't', 'ts': us(t, rank),
                           'pid': rank, 'tid': tid, 'args': dict(data, task=r['task'])})
    for export in exports:
        for task_id, t, kind, name, data in export['proxy_events']:
            events.append({'name': name, 'cat': kind, 'ph': 'i', 's': 'p',
                           'ts': us(t, export['rank']), 'pid': export['rank'], 'tid': 0,
                           'args': dict(data, task=task_id)})
    return {'traceEvents': events, 'displayTimeUnit': 'ms',
            'metadata': {'origin_unix_time': origin, 'clock_offsets_s': offsets}}


def write_chrome_trace(path, trace):
    """Write ``trace`` (see :func:`chrome_trace`) as JSON to ``path`` (directories made)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w') as f:
        json.dump(trace, f, default=repr)
