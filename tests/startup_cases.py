"""Start-up modes (SPEC S3, section 0's ``comm=``): ``python startup_cases.py SCENARIO``.

Run by test_startup.py, as a single process (no mpiexec: spawned workers) or under mpiexec.
Classes here are defined in ``__main__``: in interactive mode they travel by value.
"""

import asyncio
import json
import os
import sys
import time

import numpy as np
import psutil

import mosaic_mpi as mosaic


@mosaic.tessera
class Acc:
    def __init__(self, size):
        self.total = np.zeros(size)

    def add(self, x):
        self.total += x
        return self.total.copy()

    def pid(self):
        return os.getpid()

    def scale(self, thing):         # an instance of a class of __main__, and a result back
        return Thing(thing.value * 2)

    async def nap(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    def slow(self, seconds):
        time.sleep(seconds)
        return seconds


class Thing:
    def __init__(self, value):
        self.value = value


def report_children():
    pids = sorted(p.pid for p in psutil.Process().children(recursive=True))
    print('CHILDREN', ' '.join(map(str, pids)), flush=True)


async def interactive_cycles():
    rt = await mosaic.interactive('on', num_workers=2)
    assert rt.uid == 'head' and rt.num_workers == 2 and mosaic.runtime() is rt
    assert await mosaic.interactive('on', num_workers=2) is rt      # no-op
    report_children()
    acc = Acc.remote(3)
    first = acc.add(np.ones(3))
    assert np.array_equal(await first.result(), np.ones(3))
    pids = await mosaic.gather([m.pid().result() for m in Acc.remote(1, len=2)])
    assert len(set(pids)) == 2 and os.getpid() not in pids, pids
    back = await acc.scale(Thing(21)).result()
    assert type(back) is Thing and back.value == 42                   # the same class, by value
    # A cell interrupted while calls are in flight: the runtime keeps working.
    waiting = asyncio.ensure_future(acc.nap(0.5).result())
    slow = asyncio.ensure_future(acc.slow(0.3).result())
    await asyncio.sleep(0.05)
    waiting.cancel()
    slow.cancel()
    for cancelled in (waiting, slow):
        try:
            await cancelled
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError('not cancelled')
    assert np.array_equal(await acc.add(np.ones(3)).result(), np.full(3, 2.0))
    first_id = first._st.task_id
    await mosaic.interactive('off')
    assert mosaic.runtime() is None
    await mosaic.interactive('off')                                     # no-op
    rt2 = await mosaic.interactive('on', num_workers=3)
    assert rt2 is not rt and rt2.num_workers == 3
    acc2 = Acc.remote(2)
    again = acc2.add(np.arange(2.0))
    assert np.array_equal(await again.result(), [0.0, 1.0])
    assert again._st.task_id != first_id, 'ids repeat across runs'
    try:
        acc.add(np.ones(3))                     # a tessera of the first run: its worker is gone
    except mosaic.RuntimeNotRunning as error:
        assert 'earlier run' in str(error)
    else:
        raise AssertionError('a stale proxy was accepted')
    new_pids = await mosaic.gather([m.pid().result() for m in Acc.remote(1, len=3)])
    assert not set(new_pids) & set(pids), (pids, new_pids)              # new worker processes
    await mosaic.interactive('off')
    print('INTERACTIVE PASSED', flush=True)


def interactive():
    asyncio.run(interactive_cycles())


async def bad_interactive():
    for bad in (0, -1, 2.5):
        try:
            await mosaic.interactive('on', num_workers=bad)
        except ValueError as error:
            print('NUM_WORKERS', bad, error, flush=True)
    try:
        await mosaic.interactive('maybe')
    except ValueError as error:
        print('SWITCH', error, flush=True)
    assert mosaic.runtime() is None
    # Spawn unavailable: the MPI library's error becomes a SpawnError saying what to do.
    from mpi4py import MPI
    from mosaic_mpi.comms import spawn

    def no_spawn(*args):
        raise MPI.Exception(MPI.ERR_SPAWN)
    spawn._spawn_processes = no_spawn
    try:
        await mosaic.interactive('on', num_workers=2)
    except mosaic.SpawnError as error:
        print('SPAWN', error, flush=True)
    assert mosaic.runtime() is None


def bad_input():
    asyncio.run(bad_interactive())


async def report(runtime):
    assert runtime.uid == 'head' and mosaic.runtime() is runtime
    pids = await mosaic.gather([m.pid().result()
                                for m in Acc.remote(1, len=runtime.num_workers)])
    print('WORKERS', runtime.num_workers, len(set(pids)), os.getpid() not in pids, flush=True)
    return 'main value'


def run_num_workers():
    sys.stdout.write(f'TOP LEVEL {" ".join(sys.argv[2:])}\n')    # every process runs the script
    sys.stdout.flush()
    print('RESULT', mosaic.run(report, num_workers=2), flush=True)
    print('AFTER RUN', flush=True)                              # the head only


def init_num_workers():
    runtime = mosaic.init(num_workers=2)                        # workers serve inside, then exit
    print('INIT', asyncio.run(report(runtime)), flush=True)
    mosaic.stop()


def child_fails():
    from mpi4py import MPI
    if MPI.Comm.Get_parent() != MPI.COMM_NULL:      # the spawned copies of this script
        raise RuntimeError('a spawned worker failed before reaching run()')
    mosaic.run(report, num_workers=2, start_timeout=8)


def mismatch():
    from mpi4py import MPI
    try:
        mosaic.run(report, num_workers=5)
    except ValueError as error:
        message = str(error)
    else:
        message = None
    messages = MPI.COMM_WORLD.gather(message, root=0)    # one line: ranks' lines may interleave
    if MPI.COMM_WORLD.Get_rank() == 0:
        print('FACTS', json.dumps(messages), flush=True)


def no_workers():
    try:
        mosaic.run(report)
    except ValueError as error:
        print('NO WORKERS', error, flush=True)


if __name__ == '__main__':
    globals()[sys.argv[1]]()
