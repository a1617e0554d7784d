"""Where the time of one round trip goes: timestamps at every hop of ``await p.noop().result()``.

Run::

    mpiexec -n 2 python bench/trace_hops.py                      # 1000 calls, default runtime
    mpiexec -n 2 python bench/trace_hops.py --no-fetch           # await p.noop() instead
    mpiexec -n 2 python bench/trace_hops.py --timer-slack-ns 1     # see _common experiments

The script wraps (never edits) a few runtime functions on every rank so that each records a
``time.perf_counter()`` stamp (``CLOCK_MONOTONIC``, one clock for every process on the machine)
when it starts and ends: the head's ``Client.submit_call``, each rank's
``Wire.send`` (``messages.pack`` + ``Isend`` of one packet) and the wire's
``unpack`` (a received packet's records), the worker's ``Worker._call`` (on its event loop) and
``Worker._finished``, and the head's ``Client._resolve``. Workers hand their stamps to the head
through a tessera. For each call, the first stamp of each kind inside the call's window gives the
hops:

=============================================  ===================================================
hop                                            from -> to
=============================================  ===================================================
head: submit                                   ``p.noop()`` entered -> ``submit_call`` returned
head: await, loop waits, sends Call (+Fetch)    ``submit_call`` returned -> first ``Wire.send`` done
transit + worker receives and unpacks          head send done -> worker ``unpack`` done
worker: dispatch, loop runs the call           ``unpack`` done -> ``Worker._call`` entered
worker: run the task, store, queue replies     ``_call`` entered -> ``_finished`` done
worker: loop waits, sends Completed+Value      ``_finished`` done -> worker ``Wire.send`` done
transit + head receives and unpacks            worker send done -> head ``unpack`` done
head: dispatch -> resolve                      head ``unpack`` done -> ``Client._resolve`` entered
head: resolve -> await returns                 ``_resolve`` entered -> the ``await`` returned
=============================================  ===================================================

(with ``--no-fetch`` the last two hops become one, ending at the ``await`` returning). Since the
event loops drive the transport themselves when idle (see ``docs/architecture.md``), every hop
runs on the ranks' main threads; the stamps cost about 0.3 us each. The median and mean of each
hop are printed; the means add up to the mean round trip.
"""

import argparse
import statistics
import sys
import time

import mosaic_mpi as mosaic
from _common import add_experiment_options, apply_experiments, describe_experiments
from mosaic_mpi.comms import wire as _wire
from mosaic_mpi.runtime import client as _client
from mosaic_mpi.runtime import worker as _worker

EVENTS = []
_clock = time.perf_counter


def _wrap(owner, name, label, static=False):
    """Make ``owner.name`` record ``label>`` and ``label<`` stamps around each call."""
    original = getattr(owner, name, None)
    if original is None:
        print(f'trace_hops: {owner.__name__}.{name} not found, hop not traced', file=sys.stderr)
        return

    def traced(*args, **kwargs):
        EVENTS.append((_clock(), label + '>'))
        try:
            return original(*args, **kwargs)
        finally:
            EVENTS.append((_clock(), label + '<'))
    setattr(owner, name, staticmethod(traced) if static else traced)


def install():
    """Wrap the runtime functions listed in the module docstring (on this rank)."""
    _wrap(_client.Client, 'submit_call', 'submit')
    _wrap(_wire.Wire, 'send', 'send')
    _wrap(_wire, 'unpack', 'recv')
    _wrap(_worker.Worker, '_call', 'call')
    _wrap(_worker.Worker, '_finished', 'finished')
    _wrap(_client.Client, '_resolve', 'resolve', static=True)


@mosaic.tessera
class Traced:
    """The called tessera; also hands this worker's stamps to the head."""

    def noop(self):
        """Do nothing.

        Returns
        -------
        None
        """
        return None

    def events(self):
        """This worker's stamps.

        Returns
        -------
        list of (float, str)
            ``(perf_counter, label)`` pairs.
        """
        return list(EVENTS)

    def clear(self):
        """Forget this worker's stamps."""
        EVENTS.clear()


HOPS = [
    ('head: submit', ('H', 'start'), ('H', 'submit<')),
    ('head: await, loop waits, sends', ('H', 'submit<'), ('H', 'send<')),
    ('transit + worker receives, unpacks', ('H', 'send<'), ('W', 'recv<')),
    ('worker: dispatch, loop runs the call', ('W', 'recv<'), ('W', 'call>')),
    ('worker: run task, store, queue replies', ('W', 'call>'), ('W', 'finished<')),
    ('worker: loop waits, sends replies', ('W', 'finished<'), ('W', 'send<')),
    ('transit + head receives, unpacks', ('W', 'send<'), ('H', 'recv<')),
    ('head: dispatch -> resolve', ('H', 'recv<'), ('H', 'resolve>')),
    ('head: resolve -> await returns', ('H', 'resolve>'), ('H', 'end')),
]


def hop_table(head_events, worker_events, windows, fetch):
    """Median duration of each hop over the calls.

    Parameters
    ----------
    head_events, worker_events : list of (float, str)
        Stamps of the head and of the worker.
    windows : list of (float, float)
        Start and end of each call, on the head.
    fetch : bool
        Whether the calls fetched their result (``_resolve`` is then on the path).

    Returns
    -------
    hops : list of (str, float, float)
        Hop name, median and mean seconds, in path order (the means add up to the mean round
        trip of the calls in which every hop was found; the medians need not).
    complete : int
        Number of calls in which every hop was found.
    """
    events = sorted([(t, 'H', label) for t, label in head_events] +
                    [(t, 'W', label) for t, label in worker_events])
    hops = HOPS if fetch else HOPS[:7] + [('head: dispatch -> await returns',
                                           ('H', 'recv<'), ('H', 'end'))]
    times = {name: [] for name, _, _ in hops}
    position = 0
    for start, end in windows:
        while position < len(events) and events[position][0] < start:
            position += 1
        stamps = {('H', 'start'): start, ('H', 'end'): end}
        index = position
        # The first stamp of each kind after the previous checkpoint, in path order.
        cursor = start
        for name, origin, target in hops:
            if target in stamps:
                continue
            while index < len(events) and events[index][0] <= end:
                t, who, label = events[index]
                index += 1
                if (who, label) == target and t >= cursor:
                    stamps[target] = cursor = t
                    break
        if all(target in stamps and origin in stamps for _, origin, target in hops):
            for name, origin, target in hops:
                times[name].append(stamps[target] - stamps[origin])
    return [(name, statistics.median(values) if values else float('nan'),
             statistics.fmean(values) if values else float('nan'))
            for name, values in times.items()], min(len(v) for v in times.values())


def main_all(argv=None):
    """Entry point on every rank.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--calls', type=int, default=1000, help='traced round trips')
    parser.add_argument('--warmup', type=int, default=200, help='untraced round trips first')
    parser.add_argument('--no-fetch', action='store_true', help='await p.noop() (completion)')
    add_experiment_options(parser)
    args = parser.parse_args(argv)
    config = apply_experiments(args)
    fetch = not args.no_fetch
    install()

    async def main(runtime):
        proxy = Traced.remote(runtime=runtime.workers[0])
        await proxy
        for _ in range(args.warmup):
            await proxy.noop().result()
        await proxy.clear()
        EVENTS.clear()
        windows = []
        for _ in range(args.calls):
            start = _clock()
            if fetch:
                await proxy.noop().result()
            else:
                await proxy.noop()
            windows.append((start, _clock()))
        head_events = list(EVENTS)
        worker_events = await proxy.events().result()
        return hop_table(head_events, worker_events, windows, fetch), windows

    result = mosaic.run(main, **config)
    if result is None:
        return
    (hops, complete), windows = result
    total = statistics.median(end - start for start, end in windows)
    import os
    print(f'load average {os.getloadavg()[0]:.2f}')
    what = 'await p.noop().result()' if fetch else 'await p.noop()'
    print(f'== hops of {what}: medians over {complete} of {len(windows)} calls '
          f'(experiments: {describe_experiments(args)}) ==')
    print(f'{"hop":40s} {"median":>9s} {"mean":>9s}')
    for name, median, mean in hops:
        print(f'{name:40s} {median * 1e6:9.1f} {mean * 1e6:9.1f} us')
    print(f'{"sum":40s} {sum(h[1] for h in hops) * 1e6:9.1f} {sum(h[2] for h in hops) * 1e6:9.1f} us')
    print(f'{"round trip":40s} {total * 1e6:9.1f} '
          f'{statistics.fmean(end - start for start, end in windows) * 1e6:9.1f} us', flush=True)


if __name__ == '__main__':
    main_all()
