"""A worker that dies in the middle of a task (S33): ``python mpi_lost.py HOW``.

HOW is ``exit`` (``os._exit(9)``), ``kill`` (SIGKILL) or ``segv`` (a segmentation fault). The
head must notice, fail the tasks waiting on that worker with an error naming it and the task,
and end the job non-zero.
"""

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


if __name__ == '__main__':
    if sys.argv[1] == 'loop':
        mosaic.run(loop_goes_on, worker_lost='continue')
    else:
        mosaic.run(main)
