"""How much the head pays per task, and how that scales with the number of workers.

Run::

    python bench/bench_head.py                      # 1, 2, 4 and 8 workers, one job each (~2 min)
    python bench/bench_head.py --workers 1,2 --quick
    python bench/bench_head.py --netns              # the same across 3 network namespaces (root)

Each worker count W is one job, ``mpiexec -n W+1 python bench/bench_head.py --child`` (the
runtime starts once per process); with ``--netns`` the job runs with the head on one namespace
"host" and the workers split over two others, MPI over TCP (``tests/netns.py``). In each job:

- **raw mpi4py**: rank 0 ``isend``s N small pickled messages round-robin to the W workers, each
  answers every one (``bench_latency.raw_pipelined``): messages/s through rank 0;
- **no-op tasks**: N calls ``p.noop()`` round-robin over one tessera per worker, submitted in one
  loop, then all awaited: tasks/s from the first submit to the last completion; the head's CPU
  time per task (``time.process_time``: all its threads); MPI messages and bytes through the head
  per task (messages = packets, each one MPI header message plus one per out-of-band buffer:
  those the head sent plus those the workers sent it, counted by wrapping ``Wire.send`` in this
  script on every rank; also the records they carried; bytes from the head's ``Transport``
  counters). The counter queries themselves (2 small calls per worker per phase) are included;
- **idle**: ``--idle`` seconds with nothing to do: the head's CPU time per second and the
  heartbeat packets through it (each worker and the head beat every 0.5 s);
- **1 ms tasks**: the same with ``time.sleep(1e-3)`` in the method (ideal: W * 1000 tasks/s);
- **chain of 8 MB results**: K tasks, each one on the next worker, each taking the previous
  task's 8 MB result as its argument (worker to worker) and returning a new 8 MB array; bytes
  through the head per task (must be << 8 MB), bytes the workers sent;
- **array call**: ``await arr.noop()`` on an ``ArrayProxy`` of M members (M = 8 W) against M
  single calls ``member.noop()`` (each round awaited before the next): head CPU time per member
  call, all threads over the whole phase and the main thread inside the submitting expression
  alone, wall time per member, both ways, and their ratios; and the array call with its members
  awaited one by one (``for t in tasks: await t``: each member gets a proxy of its own).

Printed per job: a table (figure, mosaic_mpi, raw mpi4py, ratio), and at the end one summary line
per job; ``--json PATH`` keeps everything. docs/scaling.md builds its model on these figures.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mosaic_mpi as mosaic

HERE = Path(__file__).resolve().parent
CHAIN_BYTES = 8 << 20           # one result of the forwarded chain


def parse_args(argv=None):
    """Command-line options.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    argparse.Namespace
        ``workers`` is a list of ints.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workers', default='1,2,4,8', help='comma-separated worker counts')
    parser.add_argument('--tasks', type=int, default=3000, help='no-op tasks per job')
    parser.add_argument('--sleep-tasks', type=int, default=1500, help='1 ms tasks per job')
    parser.add_argument('--chain', type=int, default=24, help='tasks in the 8 MB chain')
    parser.add_argument('--array-calls', type=int, default=50, help='calls on the array')
    parser.add_argument('--idle', type=float, default=3.0,
                        help='seconds of the idle phase (heartbeats only)')
    parser.add_argument('--spin-time', type=float, default=None,
                        help="the runtime's spin_time (s): with 0 the head sleeps whenever it "
                             "waits instead of polling for 1 ms, so its CPU time is its work")
    parser.add_argument('--heartbeat', type=float, default=None,
                        help='runtime heartbeat interval (s; 0 turns heartbeats off): the idle '
                             'phase then prices one heartbeat packet')
    parser.add_argument('--quick', action='store_true', help='a quarter of every count')
    parser.add_argument('--netns', action='store_true',
                        help='run each job across 3 network namespaces (root; tests/netns.py)')
    parser.add_argument('--json', metavar='PATH', default=None, help='also write results as JSON')
    parser.add_argument('--child', metavar='PATH', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(',') if w.strip()]
    if args.quick:
        args.tasks, args.sleep_tasks = args.tasks // 4, args.sleep_tasks // 4
        args.chain, args.array_calls = max(4, args.chain // 4), max(5, args.array_calls // 4)
        args.idle = 1.0
    return args


# -- the job (every rank) ------------------------------------------------------------------------

_packets = {}                   # destination rank -> packets this rank sent
_records = {}                   # destination rank -> records in them
_beats = {}                     # destination rank -> heartbeat packets (not in _packets)


def _count_packets():
    """Wrap ``Wire.send`` (one call = one packet: a header message + its data messages)."""
    from mosaic_mpi.comms import wire
    from mosaic_mpi.messages import Beat
    send = wire.Wire.send

    def counted(self, dest, records):
        if len(records) == 1 and type(records[0]) is Beat:
            _beats[dest] = _beats.get(dest, 0) + 1
            return send(self, dest, records)
        _packets[dest] = _packets.get(dest, 0) + 1
        _records[dest] = _records.get(dest, 0) + len(records)
        return send(self, dest, records)

    wire.Wire.send = counted


@mosaic.tessera
class Head:
    """Methods the head calls (workers find it as ``__main__.Head``: they run this script)."""

    def noop(self):
        return None

    def sleep(self, seconds):
        time.sleep(seconds)

    def make(self, nbytes):
        return np.ones(nbytes // 8)

    def step(self, x):
        return x + 1.0              # a new array of the same size

    def counters(self):
        return (_packets.get(0, 0), _records.get(0, 0), mosaic.runtime().transport.bytes_sent,
                _beats.get(0, 0))


class Probe:
    """Snapshots of the head's CPU time, bytes and packets, and the workers' packets to it."""

    def __init__(self, runtime, members):
        self.runtime = runtime
        self.members = members

    async def take(self):
        counters = await asyncio.gather(*[m.counters().result() for m in self.members])
        transport = self.runtime.transport
        return {'cpu': time.process_time(), 'wall': time.perf_counter(),
                'sent': transport.bytes_sent, 'received': transport.bytes_received,
                'packets_out': sum(_packets.values()),
                'packets_in': sum(c[0] for c in counters),
                'records_out': sum(_records.values()), 'records_in': sum(c[1] for c in counters),
                'worker_bytes': sum(c[2] for c in counters),
                'beats': sum(_beats.values()) + sum(c[3] for c in counters)}

    @staticmethod
    def delta(before, after, tasks):
        d = {k: after[k] - before[k] for k in before}
        return {'tasks': tasks, 'wall': d['wall'], 'rate': tasks / d['wall'],
                'cpu_us': d['cpu'] / tasks * 1e6, 'busy': d['cpu'] / d['wall'],
                'messages': (d['packets_out'] + d['packets_in']) / tasks,
                'records': (d['records_out'] + d['records_in']) / tasks,
                'bytes': (d['sent'] + d['received']) / tasks,
                'worker_bytes': d['worker_bytes'] / tasks, 'beats_per_s': d['beats'] / d['wall']}


async def _many(probe, members, count, make_call):
    before = await probe.take()
    tasks = [make_call(members[i % len(members)]) for i in range(count)]
    for t in tasks:
        await t
    after = await probe.take()
    return Probe.delta(before, after, count)


async def _idle(probe, seconds):
    before = await probe.take()
    await asyncio.sleep(seconds)
    after = await probe.take()
    return Probe.delta(before, after, 1)


async def _chain(probe, members, length):
    before = await probe.take()
    t = members[0].make(CHAIN_BYTES)
    for i in range(1, length):
        t = members[i % len(members)].step(t)
    await t
    after = await probe.take()
    return Probe.delta(before, after, length)


async def _array_vs_single(probe, array, calls):
    """Head CPU per member call: ``array.noop()`` against one ``member.noop()`` per member.

    Returns ``(array, array_each, single)`` deltas, each with ``submit_us``: CPU time of the
    head's main thread inside the submitting expression alone, per member call. ``array``
    awaits the whole call (``await arr.noop()``), ``array_each`` awaits its members one by one
    (each gets a proxy of its own), ``single`` makes one call per member."""
    members = list(array)
    size = len(members)
    clock = time.thread_time
    out = []

    async def whole(tasks):
        await tasks

    async def each(tasks):
        for t in tasks:
            await t

    for fan_out, wait in ((lambda: array.noop(), whole), (lambda: array.noop(), each),
                          (lambda: [m.noop() for m in members], each)):
        submit = 0.0
        before = await probe.take()
        for _ in range(calls):
            start = clock()
            tasks = fan_out()
            submit += clock() - start
            await wait(tasks)
        del tasks
        after = await probe.take()
        delta = Probe.delta(before, after, calls * size)
        delta['submit_us'] = submit / (calls * size) * 1e6
        out.append(delta)
    return tuple(out)


def _job(args):
    from mpi4py import MPI

    from _common import machine_info
    from bench_latency import raw_pipelined

    _count_packets()
    comm = MPI.COMM_WORLD
    workers = comm.Get_size() - 1
    raw_pipelined(comm, 300, workers)          # warm-up
    raw = raw_pipelined(comm, args.tasks, workers)

    async def main(runtime):
        members = Head.remote(len=runtime.num_workers)
        await members
        members = list(members)
        probe = Probe(runtime, members)
        await _many(probe, members, 300, lambda m: m.noop())            # warm-up
        out = {'workers': runtime.num_workers, 'hosts': runtime.hosts,
               'raw_rate': args.tasks / raw}
        out['idle'] = await _idle(probe, args.idle)
        out['noop'] = await _many(probe, members, args.tasks, lambda m: m.noop())
        out['sleep'] = await _many(probe, members, args.sleep_tasks, lambda m: m.sleep(1e-3))
        if runtime.num_workers >= 2:
            out['chain'] = await _chain(probe, members, args.chain)
        array = Head.remote(len=8 * runtime.num_workers)
        await array
        out['array'], out['array_each'], out['single'] = await _array_vs_single(
            probe, array, args.array_calls)
        return out

    config = {}
    if args.heartbeat == 0:
        config['heartbeat_timeout'] = 0
    elif args.heartbeat is not None:
        config['heartbeat'] = args.heartbeat
    if args.spin_time is not None:
        config['spin_time'] = args.spin_time
    result = mosaic.run(main, **config)
    if comm.Get_rank() == 0:
        result['machine'] = machine_info()
        with open(args.child, 'w') as f:
            json.dump(result, f)


# -- the driver ------------------------------------------------------------------------------------

def _launch(args, workers, path):
    child = [str(HERE / 'bench_head.py'), '--child', path, '--tasks', str(args.tasks),
             '--sleep-tasks', str(args.sleep_tasks), '--chain', str(args.chain),
             '--array-calls', str(args.array_calls), '--idle', str(args.idle)]
    if args.heartbeat is not None:
        child += ['--heartbeat', str(args.heartbeat)]
    if args.spin_time is not None:
        child += ['--spin-time', str(args.spin_time)]
    if args.netns:
        return args.hosts.command(child, ranks=(1, (workers + 1) // 2, workers // 2))
    mpiexec = Path(sys.executable).with_name('mpiexec')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(HERE.parent), str(HERE), env.get('PYTHONPATH', '')])
    return [str(mpiexec), '-n', str(workers + 1), sys.executable, *child], env


def _table(r):
    from _common import Table
    w = r['workers']
    table = Table(f'the head with {w} worker(s) on {len(set(r["hosts"]))} host(s)')
    idle = r['idle']
    table.add('idle head (heartbeats only): CPU', 'us/s', idle['cpu_us'] / idle['wall'],
              note=f'{idle["beats_per_s"]:.1f} heartbeat packets/s through the head; '
                   f'{idle["messages"] / idle["wall"]:.1f} other packets/s (the probes)')
    for key, label in (('noop', 'no-op tasks'), ('sleep', '1 ms tasks')):
        f = r[key]
        table.add(f'{label}: dispatched', 'tasks/s', f['rate'],
                  r['raw_rate'] if key == 'noop' else None,
                  note='raw: pickled isend + reply' if key == 'noop'
                  else f'ideal {w * 1000:,} (W / 1 ms)')
        table.add(f'{label}: head CPU', 'us/task', f['cpu_us'],
                  note=f'head busy {f["busy"]:.0%} of the wall time (all its threads)')
        table.add(f'{label}: head messages', 'msg/task', f['messages'],
                  note=f'{f["records"]:.2f} records/task (batched into packets)')
        table.add(f'{label}: head bytes', 'B/task', f['bytes'])
    if 'chain' in r:
        c = r['chain']
        table.add('8 MB chain: head bytes', 'B/task', c['bytes'],
                  note=f'{c["bytes"] / CHAIN_BYTES:.2e} of the 8 MB result; workers sent '
                       f'{c["worker_bytes"] / 1e6:.1f} MB/task')
        table.add('8 MB chain: head messages', 'msg/task', c['messages'])
    a, e, s = r['array'], r['array_each'], r['single']
    table.add('array call: head CPU per member', 'us', a['cpu_us'],
              note=f'{8 * w} members, `await arr.noop()`; vs {s["cpu_us"]:.0f} us per single '
                   f'call: ratio {a["cpu_us"] / s["cpu_us"]:.2f}')
    table.add('array call: wall time per member', 'us', a['wall'] / a['tasks'] * 1e6,
              note=f'single calls {s["wall"] / s["tasks"] * 1e6:.1f} us: ratio '
                   f'{a["wall"] / s["wall"]:.2f}')
    table.add('array call: submit CPU per member', 'us', a['submit_us'],
              note=f'main thread in `arr.noop()` alone; single calls {s["submit_us"]:.1f} us: '
                   f'ratio {a["submit_us"] / s["submit_us"]:.2f}')
    table.add('array call: head messages per member', 'msg', a['messages'],
              note=f'single calls: {s["messages"]:.2f}')
    table.add('array call, members awaited one by one', 'us', e['cpu_us'],
              note=f'head CPU per member (each gets its proxy): ratio to single calls '
                   f'{e["cpu_us"] / s["cpu_us"]:.2f}')
    return table


def drive(args):
    """Run one job per worker count and print the tables.

    Parameters
    ----------
    args : argparse.Namespace
        Options.
    """
    sys.path.insert(0, str(HERE))
    from _common import machine_line
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.netns:
            sys.path.insert(0, str(HERE.parent / 'tests'))
            from netns import Hosts
            args.hosts = Hosts(tmp, f'bh{os.getpid() % 100000}')
            args.hosts.up()
        try:
            for workers in args.workers:
                path = os.path.join(tmp, f'w{workers}.json')
                command, env = _launch(args, workers, path)
                done = subprocess.run(command, env=env, capture_output=True, text=True,
                                      timeout=900)
                if done.returncode != 0:
                    sys.exit(f'{" ".join(command)} failed ({done.returncode}):\n'
                             f'{done.stdout}\n{done.stderr}')
                with open(path) as f:
                    result = json.load(f)
                results.append(result)
                _table(result).print()
        finally:
            if args.netns:
                args.hosts.down()
    print(machine_line(argparse.Namespace(), max(args.workers) + 1,
                       os.getloadavg()[0]).replace(f'{max(args.workers) + 1} ranks',
                                                   'W+1 ranks per job'))
    print('summary: W | idle head CPU us/s | no-op tasks/s | raw msg/s | head CPU us/task '
          '(no-op, 1 ms) | msg/task | records/task | B/task | 1 ms tasks/s (ideal) | '
          'chain head B/task | '
          'array/single CPU (all, wall, submit; members one by one)')
    for r in results:
        w = r['workers']
        chain = f'{r["chain"]["bytes"]:.0f}' if 'chain' in r else '-'
        idle = r['idle']['cpu_us'] / r['idle']['wall']
        print(f'  {w} | {idle:,.0f} | {r["noop"]["rate"]:,.0f} | {r["raw_rate"]:,.0f} | '
              f'{r["noop"]["cpu_us"]:.0f}, {r["sleep"]["cpu_us"]:.0f} | '
              f'{r["noop"]["messages"]:.2f} | {r["noop"]["records"]:.2f} | '
              f'{r["noop"]["bytes"]:.0f} | '
              f'{r["sleep"]["rate"]:,.0f} ({w * 1000:,}) | {chain} | '
              f'{r["array"]["cpu_us"] / r["single"]["cpu_us"]:.2f}, '
              f'{r["array"]["wall"] / r["single"]["wall"]:.2f}, '
              f'{r["array"]["submit_us"] / r["single"]["submit_us"]:.2f}; '
              f'{r["array_each"]["cpu_us"] / r["single"]["cpu_us"]:.2f}', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'benchmark': 'head', 'netns': args.netns, 'results': results}, f,
                      indent=2)


if __name__ == '__main__':
    options = parse_args()
    if options.child:
        _job(options)
    else:
        drive(options)
