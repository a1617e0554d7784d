"""Task timeline scenario (S30), run by test_trace_mpi.py: ``python mpi_trace.py TRACE_PATH``."""

import sys
import time

import numpy as np

import mosaic_mpi as mosaic


@mosaic.tessera
class Worker:
    def work(self, array, seconds):
        task = mosaic.current_task()
        task.add_event('halfway', fraction=0.5)
        time.sleep(seconds)
        return array * 2

    def use(self, array):
        return float(array.sum())


async def main(runtime):
    members = Worker.remote(len=runtime.num_workers)
    big = np.ones(1 << 17)                                  # 1 MiB argument
    tasks = [m.work(big, 0.2) for m in members]
    for t in tasks:
        t.add_event('submitted-here', n=1)
    sums = [members[-1].use(t) for t in tasks]              # results move worker to worker
    print('SUMS', [await s.result() for s in sums])


if __name__ == '__main__':
    mosaic.run(main, trace=sys.argv[1])
