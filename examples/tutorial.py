"""Stride's parallelism tutorial, as a script: the twin of ``tutorial.ipynb``, same steps, same order.

Run with ``mpiexec -n 3 python examples/tutorial.py`` (1 head + 2 workers). The only change from
a Mosaic script is the import line.
"""

import time

import numpy as np

import mosaic_mpi as mosaic


@mosaic.tessera
class Solver1:
    """A stand-in for a slow solver that keeps state."""

    def __init__(self, data):
        self.data = data
        self.calls = []

    def solve(self, data):
        print('Solve 1')
        self.calls.append('solve')
        self.data = self.data + data
        time.sleep(0.5)
        print('Done 1')
        return self.data

    def solve_more(self):
        self.calls.append('solve_more')
        time.sleep(0.2)

    def extremes(self):
        self.calls.append('extremes')
        return float(self.data.min()), float(self.data.max())


@mosaic.tessera
class Solver2:
    """A second slow solver."""

    def __init__(self):
        self.data = 0

    def solve(self, data):
        print('Solve 2')
        self.data = data * 2
        time.sleep(0.5)
        print('Done 2')
        return self.data

    def solve_more(self):
        time.sleep(0.2)
        return 'more'


async def main(runtime):
    print(runtime.uid, 'with', runtime.num_workers, 'workers:', [w.uid for w in runtime.workers])

    # Remote objects: remote() returns a proxy at once; the object is built on a worker.
    array = np.ones((1024, 1024, 1), dtype=np.float32)
    solver_1 = Solver1.remote(array)
    solver_2 = Solver2.remote()
    print('attribute:', float(np.sum(await solver_1.data)))

    # Remote calls return task proxies at once; calls on different tesserae run in parallel.
    task_1 = solver_1.solve(array)
    task_2 = solver_2.solve(array)
    await task_1
    await task_2
    print('states:', task_1.state.value, task_2.state.value)

    # Results stay on their worker until asked for.
    result_1 = await task_1.result()
    result_2 = await task_2.result()
    print('results:', result_1.shape, result_2.shape, float(np.sum(await solver_1.data)))

    # Dependencies: the value goes worker to worker; outputs[i] is one element of a tuple.
    task_1 = solver_1.solve(array)
    task_2 = solver_2.solve(task_1)
    await task_2
    extremes = solver_1.extremes()
    print('output:', await solver_2.solve(extremes.outputs[1]).result())

    # done: wait for a task, pass nothing.
    task_1 = solver_1.solve_more()
    task_2 = solver_2.solve_more(task_1.done)
    await task_2
    print('done:', await task_2.result(), await task_1.done.result())

    # Calls on one tessera run in call order, whatever the order they are awaited in.
    first, second = solver_1.solve_more(), solver_1.extremes()
    await second
    await first
    print('order:', (await solver_1.calls)[-2:])

    # Arrays of tesserae: a call on the array runs on every member, or on one with runtime=.
    team = Solver2.remote(len=runtime.num_workers)
    tasks = await team.solve(1.5)
    print('team:', [await t.result() for t in tasks],
          await team.solve(2.0, runtime=runtime.workers[-1]).result())

    # The warehouse: put, read, publish to every worker, drop.
    obj = dict(a=1, b=2)
    ref = await runtime.put(obj)
    print('warehouse:', await ref.value(), await runtime.get(ref))
    shared = await runtime.put(array, publish=True)
    print('published:', float(np.sum(await solver_2.solve(shared).result())))
    await ref.drop()
    try:
        await ref.value()
    except KeyError:
        print('dropped: KeyError')


if __name__ == '__main__':
    mosaic.run(main)
