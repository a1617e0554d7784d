"""Scale scenarios under mpiexec: ``python mpi_scale.py huge|tesserae|tasks``."""

import sys

import numpy as np

import mosaic_mpi as mosaic


@mosaic.tessera
class Holder:
    def __init__(self, i=0):
        self.i = i

    def checksum(self, array):
        return array.shape, array.dtype.str, int(array[::1 << 20].sum()), int(array[-1])

    def echo(self, array):
        return array

    def ident(self):
        return self.i

    def noop(self):
        return None


async def huge(runtime):
    # 3 GiB of uint8: more than 2**31 elements, sent in chunks of at most max_chunk bytes.
    n = 3 * (1 << 30) + 12345
    array = np.empty(n, dtype=np.uint8)
    array[::4096] = 7
    array[-1] = 9
    h = Holder.remote()
    shape, dtype, sampled, last = await h.checksum(array).result()
    assert shape == (n,) and dtype == '|u1' and last == 9
    assert sampled == int(array[::1 << 20].sum())
    back = await h.echo(array).result()
    assert back.shape == (n,) and back.dtype == np.uint8
    step = 1 << 28                              # compare in pieces: no 3 GiB temporary
    assert all(np.array_equal(back[i:i + step], array[i:i + step]) for i in range(0, n, step))


async def tesserae(runtime):
    count = 2000
    members = [Holder.remote(i, runtime=runtime.workers[0]) for i in range(count)]
    values = await mosaic.gather([m.ident().result() for m in members])
    assert values == list(range(count))


async def tasks(runtime):
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    h = Holder.remote()
    calls = [h.noop() for _ in range(count)]
    for call in calls:
        await call
    assert all(c.check_result() for c in calls)


async def main(runtime):
    await globals()[sys.argv[1]](runtime)
    print(f'{sys.argv[1].upper()} PASSED', flush=True)


if __name__ == '__main__':
    mosaic.run(main)
