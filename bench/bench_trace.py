"""What the task timeline costs: round trip and pipelined calls, tracing off and on.

Run::

    python bench/bench_trace.py                 # 3 runs each way, alternating (about 30 s)
    python bench/bench_trace.py --runs 5

A run is one job, ``mpiexec -n 2 python bench/bench_trace.py --child [--trace PATH]`` (the
runtime starts once per process, so tracing on and off cannot share a job); the runs alternate
so that the machine's drift hits both alike. Each job also measures raw mpi4py's pickle
ping-pong, so every figure is printed as a ratio to it as well. Printed: the median over runs of
the round trip ``await p.noop().result()`` and of the per-call time of N pipelined
``p.noop()`` calls, off and on, and on / off.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(args):
    from mpi4py import MPI
    import mosaic_mpi as mosaic
    from _common import Bench

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()
    samples = []
    for _ in range(args.calls):
        if rank == 0:
            start = time.perf_counter()
            comm.send(None, 1)
            comm.recv(source=1)
            samples.append(time.perf_counter() - start)
        elif rank == 1:
            comm.recv(source=0)
            comm.send(None, 0)
    raw = statistics.median(samples) if samples else None

    async def main(runtime):
        p = Bench.remote()
        await p
        for _ in range(200):
            await p.noop().result()
        times = []
        for _ in range(args.calls):
            start = time.perf_counter()
            await p.noop().result()
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        tasks = [p.noop() for _ in range(args.pipelined)]
        await tasks[-1]
        for t in tasks:
            await t
        pipelined = (time.perf_counter() - start) / args.pipelined
        return {'round_trip': statistics.median(times), 'per_call': pipelined, 'raw': raw}

    config = {'trace': args.trace} if args.trace else {}
    result = mosaic.run(main, **config)
    if rank == 0:
        print('RESULT ' + json.dumps(result), flush=True)


def one_run(trace_path, calls, pipelined):
    mpiexec = Path(sys.executable).with_name('mpiexec')
    command = [str(mpiexec) if mpiexec.exists() else 'mpiexec', '-n', '2', sys.executable,
               str(HERE / 'bench_trace.py'), '--child', '--calls', str(calls),
               '--pipelined', str(pipelined)]
    if trace_path:
        command += ['--trace', trace_path]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                             [str(HERE.parent), os.environ.get('PYTHONPATH', '')])))
    for line in out.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[7:])
    raise RuntimeError(f'benchmark run failed:\n{out.stdout}\n{out.stderr}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--trace', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--runs', type=int, default=3, help='jobs each way (default 3)')
    parser.add_argument('--calls', type=int, default=2000, help='timed round trips per job')
    parser.add_argument('--pipelined', type=int, default=20000, help='pipelined calls per job')
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    off, on = [], []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.runs):
            off.append(one_run(None, args.calls, args.pipelined))
            on.append(one_run(os.path.join(folder, f'trace{i}.json'), args.calls,
                              args.pipelined))
    raw = statistics.median(r['raw'] for r in off + on)
    print(f'raw mpi4py pickle ping-pong: {raw * 1e6:.1f} us (median of {2 * args.runs} jobs)')
    print(f'{"figure":<34}{"off":>10}{"on":>10}{"on/off":>9}{"off/raw":>9}{"on/raw":>9}')
    for key, label in (('round_trip', 'round trip await p.noop().result()'),
                       ('per_call', 'pipelined p.noop(), per call')):
        a = statistics.median(r[key] for r in off)
        b = statistics.median(r[key] for r in on)
        print(f'{label:<34}{a * 1e6:>8.1f}us{b * 1e6:>8.1f}us{b / a:>9.2f}{a / raw:>9.1f}'
              f'{b / raw:>9.1f}')
    print(f'tracing on costs about {(statistics.median(r["per_call"] for r in on) - statistics.median(r["per_call"] for r in off)) * 1e6:.1f} us per task (pipelined)')


if __name__ == '__main__':
    main()
