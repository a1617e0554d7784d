"""A script written for one process, run as ``mpiexec -n 3 python -m mosaic_mpi module_script.py``.

No ``__name__`` guard: under ``python -m mosaic_mpi`` only rank 0 runs it (test_startup.py).
"""

import os
import sys

import mosaic_mpi as mosaic

print('SCRIPT RUNS', os.getpid(), ' '.join(sys.argv), flush=True)
if 'fail-early' in sys.argv:
    raise RuntimeError('the script failed before starting a runtime')
if 'no-runtime' in sys.argv:
    sys.exit(0)


class Point:
    def __init__(self, x):
        self.x = x


@mosaic.tessera
class Mover:
    def move(self, point, by):
        return Point(point.x + by), os.getpid()


async def main(runtime):
    movers = Mover.remote(len=runtime.num_workers)
    results = await mosaic.gather([m.move(Point(10), i).result() for i, m in enumerate(movers)])
    points = [p for p, _ in results]
    assert all(type(p) is Point for p in points)
    print('MOVED', runtime.num_workers, [p.x for p in points],
          len({pid for _, pid in results} - {os.getpid()}), flush=True)


mosaic.run(main)
print('AFTER RUN', flush=True)
