"""A Stride-style shot loop: the shape of Stride's forward and inversion loops, on mosaic_mpi.

Run with ``mpiexec -n 3 python examples/shot_loop.py``. Written as a Mosaic user writes it; the
only change from Mosaic is the import line. One solver tessera per worker (an array), the shared
inputs published to every worker once per iteration, and ``async_for`` handing each shot to a
free worker, which runs it on its own member of the array (``runtime=worker``).
"""

import numpy as np

import mosaic_mpi as mosaic


@mosaic.tessera
class ShotSolver:
    """A stand-in for a wave solver: a shot's "traces" are the model smoothed around it."""

    def __init__(self, num_receivers):
        self.num_receivers = num_receivers
        self.shots_done = 0

    def forward(self, shot_id, wavelet, model):
        receivers = np.arange(self.num_receivers)
        distance = np.abs(receivers - shot_id % self.num_receivers)
        traces = np.outer(model[distance % model.size], wavelet)     # (receivers, samples)
        self.shots_done += 1
        return traces

    def misfit(self, traces, observed):
        return float(0.5 * np.sum((traces - observed) ** 2))


async def main(runtime):
    num_shots, num_receivers = 8, 16
    wavelet = np.sin(np.linspace(0, np.pi, 64))
    solvers = ShotSolver.remote(num_receivers, len=runtime.num_workers)
    await solvers
    for iteration in range(2):
        model = np.linspace(1.0, 2.0, 32) * (1 + iteration)
        model_ref = await runtime.put(model, publish=True)       # every worker reads it locally
        wavelet_ref = await runtime.put(wavelet, publish=True)

        @runtime.async_for(range(num_shots))
        async def loop(worker, shot_id):
            traces = solvers.forward(shot_id, wavelet_ref, model_ref, runtime=worker)
            observed = np.zeros((num_receivers, wavelet.size))
            fun = solvers.misfit(traces, observed, runtime=worker)    # stays on that worker
            value = await fun.result()
            mosaic.logger().perf(f'shot {shot_id} on {worker.uid}: misfit {value:.3f}')
            return value

        misfits = await loop
        print(f'iteration {iteration}: total misfit {sum(misfits):.3f} over {len(misfits)} shots')
        await model_ref.drop()
        await wavelet_ref.drop()
    done = await solvers.shots_done
    print(f'shots per worker: {done}')


if __name__ == '__main__':
    mosaic.run(main)
