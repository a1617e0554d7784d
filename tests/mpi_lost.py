"""A worker that dies in the middle of a task (S33): ``python mpi_lost.py HOW``.

HOW is ``exit`` (``os._exit(9)``), ``kill`` (SIGKILL) or ``segv`` (a segmentation fault). The
head must notice, fail the tasks waiting on that worker with an error naming it and the task,
and end the job non-zero.
"""

import asyncio
import ctypes
import os
import signal
import sys
import time

import mosaic_mpi as mosaic


@mosaic.tessera
class Doomed:
    def pid(self):
        return os.getpid()

    def die(self, how):
        time.sleep(0.2)
        if how == 'exit':
            os._exit(9)
        if how == 'kill':
            os.kill(os.getpid(), signal.SIGKILL)
        ctypes.string_at(0)                 # segmentation fault

    def nap(self, seconds):
        time.sleep(seconds)
        return seconds


@mosaic.tessera
class Shelf:
    def big(self, n):
        import numpy as np
        return np.ones(n)

    def keep(self, refs):
        self.refs = refs                    # borrowed: their owner is the head
        return len(refs)

    def holding(self, n):
        import numpy as np
        entries = list(mosaic.runtime().warehouse._entries.values())
        return sum(1 for e in entries if isinstance(e.value, np.ndarray) and e.value.size == n)


async def borrower_lost(runtime):
    # worker_lost='continue': the results a lost worker borrowed are freed on their own worker
    store = Shelf.remote(runtime=runtime.workers[0])
    victim = Doomed.remote(runtime=runtime.workers[-1])
    borrower = Shelf.remote(runtime=runtime.workers[-1])
    refs = [store.big(777) for _ in range(4)]
    assert await borrower.keep(refs).result() == 4
    del refs
    await asyncio.sleep(0.5)
    assert await store.holding(777).result() == 4          # borrowed: kept
    try:
        await victim.die('exit')
    except mosaic.RuntimeDisconnectedError:
        pass
    deadline = time.monotonic() + 20
    while await store.holding(777).result() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    print('LEFT AFTER THE BORROWER WAS LOST', await store.holding(777).result(), flush=True)


async def loop_goes_on(runtime):
    # worker_lost='continue': an async_for with safe=True drops the lost worker's item and ends
    @runtime.async_for(range(6))
    async def loop(worker, i):
        d = Doomed.remote(runtime=worker)
        if i == 1:
            await d.die('exit')
        return await d.nap(0.3).result()
    results = await loop
    print('LOOP RESULTS', len(results), flush=True)
    await runtime.barrier()
    print('BARRIER RETURNED', flush=True)


async def main(runtime):
    victim = Doomed.remote(runtime=runtime.workers[-1])
    print('PIDS', [await Doomed.remote(runtime=w).pid().result() for w in runtime.workers],
          flush=True)
    dying = victim.die(sys.argv[1])
    queued = victim.nap(1)                  # queued behind it: lost too
    try:
        await dying
    except mosaic.RuntimeDisconnectedError as exc:
        print('LOST:', exc, flush=True)
    else:
        raise AssertionError('the task on the dead worker should fail')
    try:
        await queued.result()
    except mosaic.RuntimeDisconnectedError as exc:
        print('ALSO LOST:', exc, flush=True)
    if runtime.num_workers >= 2:
        alive = Doomed.remote(runtime=runtime.workers[0])
        print('ALIVE', await alive.nap(0.1).result(), flush=True)
    try:
        victim.nap(1)
    except mosaic.RuntimeDisconnectedError as exc:
        print('REFUSED:', exc, flush=True)


@mosaic.tessera
class Summer:
    def allreduce(self, n):
        import numpy as np
        total = np.empty(n)
        mosaic.comm().Allreduce(np.ones(n), total)
        return float(total[0])


async def placed_on_the_others(runtime):
    # worker_lost='continue': new tesserae and arrays go on the workers left. Round-robin used
    # to place every other plain tessera on the lost worker (raising), and a collective array
    # as wide as the workers sent its first member off to wait in MPI_Comm_create_group for
    # ever for the lost one, so the run never ended.
    victim = Doomed.remote(runtime=runtime.workers[-1])
    spanning = Summer.remote(len=runtime.num_workers, collective=True)
    await spanning
    finished = await victim.nap(0)          # done, its result still on the victim
    team = Doomed.remote(len=runtime.num_workers)
    naps = await team.nap(0)                # a member's result on the victim too
    try:
        await victim.die('exit')
    except mosaic.RuntimeDisconnectedError:
        pass
    for task in (finished, naps[-1]):       # used to wait for ever for an answer
        try:
            await asyncio.wait_for(task.result(), 10)
        except mosaic.RuntimeDisconnectedError as exc:
            print('FETCH REFUSED:', exc, flush=True)
    print('FETCH KEPT', await naps[0].result(), flush=True)     # on the worker left
    try:        # used to send the call to the members left, which then waited for ever
        spanning.allreduce(2)
    except mosaic.RuntimeDisconnectedError as exc:
        print('REFUSED CALL:', exc, flush=True)
    alive = [w.rank for w in runtime.workers[:-1]]
    plain = [Doomed.remote() for _ in range(4)]
    for proxy in plain:
        await proxy
    print('PLAIN ON', sorted({p.remote_runtime.rank for p in plain}) == alive, flush=True)
    members = Doomed.remote(len=3)
    print('ARRAY ON', sorted({m.remote_runtime.rank for m in members}) == alive, flush=True)
    await members
    try:
        Summer.remote(len=runtime.num_workers, collective=True)
    except mosaic.RuntimeDisconnectedError as exc:
        print('REFUSED:', exc, flush=True)
    arr = Summer.remote(len=len(alive), collective=True)
    print('COLLECTIVE', await arr.allreduce(2).result(), flush=True)


if __name__ == '__main__':
    if sys.argv[1] == 'placement':
        mosaic.run(placed_on_the_others, worker_lost='continue')
    elif sys.argv[1] == 'loop':
        mosaic.run(loop_goes_on, worker_lost='continue')
    elif sys.argv[1] == 'borrower':
        mosaic.run(borrower_lost, worker_lost='continue')
    else:
        mosaic.run(main)
