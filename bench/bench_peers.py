"""Round trip of one awaited call against Charm4py and raw mpi4py, measured in the same run.

Run (no ``mpiexec``: it launches each side itself)::

    python bench/bench_peers.py                 # 3 rounds
    python bench/bench_peers.py --rounds 5 --calls 3000

Each round runs, one after the other:

* ``mpiexec -n 2 python bench/bench_latency.py``: ``await p.noop().result()`` and
  ``await p.noop()`` one at a time (1 head + 1 worker), and raw mpi4py's pickle ping-pong
  (``comm.send`` / ``comm.recv``) of the same process pair;
* where ``charm4py`` is importable: ``python -m charmrun.start +p2 bench/peers_charm.py ++local``,
  ``p.noop(ret=True).get()`` on a chare on PE 1 (its equivalent of ``await p.noop().result()``).

It prints every round and the median over rounds of each figure and of the ratios
mosaic_mpi / Charm4py and mosaic_mpi / raw mpi4py (for times: below 1 is faster). The rounds
alternate the runtimes, so that a load change on a shared machine hits both. The 1-minute load
average is printed with each round. This script installs nothing: without ``charm4py`` it says how
to get it (``pip install charm4py``) and prints the raw ratio alone.
"""

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_mosaic(calls, timeout):
    """One ``bench_latency.py`` run: ``(result us, wait us, raw ping-pong us)`` medians."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'latency.json')
        # This checkout's mosaic_mpi, not whichever one is installed (unless PYTHONPATH says).
        env = dict(os.environ)
        env.setdefault('PYTHONPATH', os.path.dirname(HERE))
        subprocess.run(['mpiexec', '-n', '2', sys.executable, os.path.join(HERE, 'bench_latency.py'),
                        '--calls', str(calls), '--pipelined', '2000', '--json', path],
                       check=True, timeout=timeout, stdout=subprocess.DEVNULL, env=env)
        with open(path) as f:
            rows = next(iter(json.load(f)['tables'].values()))
    return rows[0]['mosaic'], rows[1]['mosaic'], rows[0]['raw']


def run_charm(calls, timeout):
    """One Charm4py run: median round trip in us."""
    out = subprocess.run([sys.executable, '-m', 'charmrun.start', '+p2',
                          os.path.join(HERE, 'peers_charm.py'), '++local', str(calls), '200',
                          '2000'], check=True, timeout=timeout, capture_output=True, text=True)
    match = re.search(r'CHARM4PY_ROUND_TRIP (\S+)', out.stdout)
    if match is None:
        raise RuntimeError('peers_charm.py printed no round trip:\n' + out.stdout + out.stderr)
    return float(match.group(1))


def main(argv=None):
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=3, help='rounds of each runtime')
    parser.add_argument('--calls', type=int, default=2000, help='timed round trips per run')
    parser.add_argument('--timeout', type=float, default=300, help='s per launch')
    args = parser.parse_args(argv)
    charm = importlib.util.find_spec('charm4py') is not None
    if not charm:
        print('charm4py is not importable: `pip install charm4py` (into this Python) to measure '
              'it in the same run; printing the raw mpi4py ratio alone')
    rows = []
    for index in range(args.rounds):
        load = os.getloadavg()[0]
        result, wait, raw = run_mosaic(args.calls, args.timeout)
        peer = run_charm(args.calls, args.timeout) if charm else None
        rows.append((load, result, wait, raw, peer))
        peer_text = f'charm4py {peer:.1f} us, ratio {result / peer:.2f}; ' if charm else ''
        print(f'round {index + 1}: load {load:.2f}; mosaic result() {result:.1f} us, await '
              f'{wait:.1f} us; raw ping-pong {raw:.2f} us; {peer_text}'
              f'mosaic/raw {result / raw:.1f}', flush=True)
    med = statistics.median
    print(f'median over {args.rounds} rounds (load {min(r[0] for r in rows):.2f}-'
          f'{max(r[0] for r in rows):.2f}):')
    print(f'  await p.noop().result(): {med(r[1] for r in rows):.1f} us; '
          f'await p.noop(): {med(r[2] for r in rows):.1f} us; raw pickle ping-pong '
          f'{med(r[3] for r in rows):.2f} us')
    print(f'  mosaic/raw: result() {med(r[1] / r[3] for r in rows):.1f}, '
          f'await {med(r[2] / r[3] for r in rows):.1f}')
    if charm:
        print(f'  charm4py p.noop(ret=True).get(): {med(r[4] for r in rows):.1f} us; '
              f'mosaic/charm4py: result() {med(r[1] / r[4] for r in rows):.2f}, '
              f'await {med(r[2] / r[4] for r in rows):.2f}')


if __name__ == '__main__':
    main()
