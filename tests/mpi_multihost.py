"""Scenarios of test_multihost.py (head on host 1, worker:1 on host 2, worker:2 on host 3).

``python mpi_multihost.py CASE HOST1 HOST2 HOST3`` (the namespace names); prints
``CASE <name> PASSED``.
"""

import asyncio
import sys
import time

import numpy as np

import mosaic_mpi as mosaic
from scenarios import run

MIB64 = 64 << 20
HOSTS = sys.argv[2:5]


@mosaic.tessera
class Node:
    def host(self):
        return mosaic.runtime().host

    def echo_plus(self, x):
        return x + 1                    # a new 64 MiB array: the result

    def make(self, nbytes):
        return np.full(nbytes // 8, 3.0)

    def total(self, x):
        return float(x.sum()), x.nbytes

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass


async def case_hosts(runtime):
    head, first, second = HOSTS
    assert runtime.host == head, runtime.host
    assert runtime.hosts == [head, first, second], runtime.hosts
    assert [w.host for w in runtime.workers] == [first, second]
    assert runtime.workers.hosts == [first, second]
    assert runtime.workers.on(second) == [runtime.workers[1]]
    try:
        runtime.workers.on(head)                    # the head's host has no worker
    except ValueError as error:
        assert repr(head) in str(error) and f'{first}: worker:1' in str(error), error
    else:
        raise AssertionError('workers.on(head host) did not raise')
    there = Node.remote(runtime=runtime.workers.on(second)[0])
    assert await there.host().result() == second     # the worker sees its own host
    assert there.remote_runtime.host == second
    print('workers:', [(w.uid, w.host) for w in runtime.workers], flush=True)


async def case_data(runtime):
    """64 MiB to worker:1 and back; 64 MiB from worker:1 to worker:2, not through the head."""
    wire = runtime.transport             # its byte counters (point-to-point, headers included)
    near = Node.remote(runtime=runtime.workers[0])
    far = Node.remote(runtime=runtime.workers[1])
    await asyncio.gather(near, far)
    before = wire.bytes_received
    x = np.arange(MIB64 // 8, dtype=np.float64)
    back = await near.echo_plus(x).result()
    assert back.nbytes == MIB64 and np.array_equal(back, x + 1)
    got = wire.bytes_received - before
    assert MIB64 <= got < MIB64 + (1 << 20), got
    print(f'argument and result: {MIB64} B each way', flush=True)
    before = wire.bytes_received, wire.bytes_sent
    made = near.make(MIB64)
    total, nbytes = await far.total(made).result()
    assert nbytes == MIB64 and total == 3.0 * (MIB64 // 8)
    through = wire.bytes_received - before[0] + wire.bytes_sent - before[1]
    assert through < 64 << 10, through          # only control records passed the head
    print(f'forward: {MIB64} B worker:1 -> worker:2, {through} B through the head', flush=True)


async def case_busy(runtime):
    """Both workers spin for a minute; killed from outside, the job must end at once."""
    members = Node.remote(len=2)
    await members
    tasks = [m.spin(60.0) for m in members]
    await asyncio.sleep(0.5)
    print('BUSY', flush=True)
    await mosaic.gather([t.result() for t in tasks])


if __name__ == '__main__':
    run(globals())
