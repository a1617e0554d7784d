"""Embedding the runtime in an MPI application (SPEC section 0's ``comm=``).

``mpiexec -n 4 python embedding_cases.py embedded``: ranks 0-2 run the runtime on a
sub-communicator while rank 3 runs collectives of its own and talks to rank 0 on COMM_WORLD
meanwhile; then all four meet again on COMM_WORLD. ``mpiexec -n 2 ... thread_level``: the
application initialised MPI below MPI_THREAD_MULTIPLE.
"""

import json
import sys


def embedded():
    from mpi4py import MPI
    import numpy as np
    import mosaic_mpi as mosaic

    @mosaic.tessera
    class Square:
        def square(self, x):
            return x * x

    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    in_runtime = rank < 3
    sub = world.Split(0 if in_runtime else 1, rank)
    if in_runtime:
        runtime = mosaic.init(comm=sub, worker_exit=False)
        if runtime is not None:                 # the head (sub rank 0 = world rank 0)
            assert runtime.num_workers == 2 and runtime.comm is sub
            proxies = Square.remote(len=2)
            values = [p.square(np.arange(4.0) + i) for i, p in enumerate(proxies)]
            # Meanwhile rank 3 sends on COMM_WORLD: the application's messages are its own.
            note = world.recv(source=3, tag=7)
            import asyncio
            got = asyncio.run(mosaic.gather([v.result() for v in values]))
            assert np.array_equal(got[0], np.arange(4.0) ** 2)
            assert np.array_equal(got[1], (np.arange(4.0) + 1) ** 2)
            mosaic.stop()
            facts = {'head': note}
        else:
            facts = {'worker_done': rank}           # init returned: the application goes on
    else:
        total = 0
        for i in range(200):                    # collectives of its own while the runtime runs
            total += sub.allreduce(i, op=MPI.SUM)
            sub.Barrier()
        world.send(f'rank 3 summed {total}', dest=0, tag=7)
        facts = {'other': total}
    # Everyone again, on the application's communicator (one line, printed by rank 0: the
    # launcher may interleave lines that several ranks print at once).
    facts['sum'] = world.allreduce(rank, op=MPI.SUM)
    sub.Free()
    everyone = world.gather(facts, root=0)
    if rank == 0:
        print('FACTS', json.dumps(everyone), flush=True)


def thread_level():
    import mpi4py
    mpi4py.rc.thread_level = 'serialized'
    from mpi4py import MPI
    import mosaic_mpi as mosaic

    try:
        mosaic.init()
    except mosaic.ThreadLevelError as error:
        message = str(error)
    else:
        message = None
    assert mosaic.runtime() is None
    messages = MPI.COMM_WORLD.gather(message, root=0)        # MPI still works (serialized)
    if MPI.COMM_WORLD.Get_rank() == 0:
        print('FACTS', json.dumps(messages), flush=True)


if __name__ == '__main__':
    globals()[sys.argv[1]]()
