"""Charm4py's side of ``bench_peers.py``: the round trip of one awaited call, 1 head + 1 worker.

Run by ``bench_peers.py`` as ``python -m charmrun.start +p2 bench/peers_charm.py ++local CALLS
WARMUP``; prints one line ``CHARM4PY_ROUND_TRIP median p10 p90`` (us) and the pipelined rate
``CHARM4PY_PIPELINED calls/s``. The equivalent of ``await p.noop().result()`` is
``p.noop(ret=True).get()`` on a chare of a ``Group`` that lives on PE 1.
"""

import sys
import time

from charm4py import Chare, Group, charm


class Bench(Chare):
    """The peer of :class:`bench._common.Bench`: a method that does nothing."""

    def noop(self):
        return None


def main(args):
    calls = int(args[1]) if len(args) > 1 else 2000
    warmup = int(args[2]) if len(args) > 2 else 200
    pipelined = int(args[3]) if len(args) > 3 else 20000
    proxy = Group(Bench)[1]
    clock = time.perf_counter
    samples = []
    for i in range(warmup + calls):
        start = clock()
        proxy.noop(ret=True).get()
        if i >= warmup:
            samples.append(clock() - start)
    samples.sort()
    print('CHARM4PY_ROUND_TRIP', samples[len(samples) // 2] * 1e6,
          samples[len(samples) // 10] * 1e6, samples[9 * len(samples) // 10] * 1e6, flush=True)
    start = clock()
    futures = [proxy.noop(ret=True) for _ in range(pipelined)]
    for future in futures:
        future.get()
    print('CHARM4PY_PIPELINED', pipelined / (clock() - start), flush=True)
    charm.exit()


if __name__ == '__main__':
    charm.start(main)
    sys.exit(0)
