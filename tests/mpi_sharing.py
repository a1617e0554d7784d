"""No sharing between a result's readers (section 0), run by test_sharing_mpi.py."""

import sys

import numpy as np

import mosaic_mpi as mosaic


@mosaic.tessera
class Mutator:
    def __init__(self):
        self.total = np.zeros(4)
        self.items = [0]

    def rank(self):
        return mosaic.runtime().rank

    def produce(self):
        return np.arange(4.0)

    def pair(self):
        return np.arange(4.0), {'k': np.ones(2)}

    def keep(self):
        self.total += 1                 # returns its own state, then changes it in place
        return self.total

    def keep_view(self):
        self.total += 1
        return self.total[1:]

    def keep_list(self):
        self.items.append(len(self.items))
        return self.items

    def bump(self, x):
        x += 1                          # updates its argument in place, as numerical code does
        return float(np.sum(x))

    def bump_dict(self, d):
        d['k'] += 10
        return float(d['k'].sum())

    def echo(self, x):
        return x


async def main(runtime):
    worker = runtime.workers[0]
    a = Mutator.remote(runtime=worker)
    b = Mutator.remote(runtime=worker)              # a second tessera on the same worker
    t = a.produce()
    sums = [a.bump(t), b.bump(t), a.bump(t)]        # three local consumers of one result
    assert [await s.result() for s in sums] == [10.0, 10.0, 10.0]
    assert np.array_equal(await t.result(), np.arange(4.0))       # the head sees it as produced
    assert await a.bump(t).result() == 10.0                        # a later consumer too
    p = a.pair()
    assert await b.bump_dict(p.outputs[1]).result() == 22.0
    assert await b.bump_dict(p.outputs[1]).result() == 22.0
    got = await p.result()
    assert np.array_equal(got[1]['k'], np.ones(2)) and np.array_equal(got[0], np.arange(4.0))
    # a result the method keeps and changes later is stored as it was when returned
    first = a.keep()
    second = a.keep()
    view = a.keep_view()
    assert np.array_equal(await first.result(), np.ones(4))
    assert np.array_equal(await second.result(), np.full(4, 2.0))
    assert np.array_equal(await view.result(), np.full(3, 3.0))
    lists = [a.keep_list(), a.keep_list()]
    assert [await x.result() for x in lists] == [[0, 1], [0, 1, 2]]
    # a consumer elsewhere and one here see the same, unchanged value
    if runtime.num_workers >= 2:
        far = Mutator.remote(runtime=runtime.workers[1])
        u = a.produce()
        assert await far.bump(u).result() == 10.0
        assert await a.bump(u).result() == 10.0
        assert np.array_equal(await u.result(), np.arange(4.0))
    # repeated result() on the head: the same object (fetched once, cached)
    assert (await t.result()) is (await t.result())
    # an argument passed through unchanged is a result like any other
    e = a.echo(np.ones(3))
    assert await a.bump(e).result() == 6.0 and np.array_equal(await e.result(), np.ones(3))
    print('SHARING PASSED', flush=True)


if __name__ == '__main__':
    mosaic.run(main)
