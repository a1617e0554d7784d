"""How a run ends: ``python mpi_lifecycle.py SCENARIO`` under mpiexec (see test_lifecycle_mpi.py)."""

import asyncio
import sys
import time

import mosaic_mpi as mosaic


@mosaic.tessera
class Busy:
    def slow(self, seconds):
        time.sleep(seconds)
        return seconds

    def quit(self, code):
        sys.exit(code)

    def ok(self):
        return 'ok'

    def big(self, mib):
        import numpy as np
        return np.ones(mib << 17)

    def consume(self, array):
        return array.nbytes

    def break_runtime(self):
        mosaic.runtime()._table = {}        # the next record this worker gets fails its dispatch
        return True


class NeedsCode(Exception):
    def __init__(self, message, code):        # pickles, but cannot be rebuilt from its args
        super().__init__(message)
        self.code = code


class BadLoad:
    def __reduce__(self):
        return _explode, ()


def _explode():
    raise RuntimeError('cannot be rebuilt')


@mosaic.tessera
class Odd:
    def raise_needs_code(self):
        raise NeedsCode('needs a code', 42)

    def bad_load(self):
        return BadLoad()


async def main_raises_while_worker_busy(runtime):
    Busy.remote().slow(60)
    await asyncio.sleep(0.2)
    raise ValueError('bad input in main')


async def main_raises_with_calls_queued(runtime):
    for _ in range(2 * runtime.num_workers):
        Busy.remote().slow(60)                         # not started yet when main fails
    raise KeyError('immediate')


async def main_exit_code_while_busy(runtime):
    Busy.remote().slow(60)
    await asyncio.sleep(0.2)
    sys.exit(4)


async def main_odd_results(runtime):
    o = Odd.remote()
    try:
        await o.raise_needs_code().result()
    except mosaic.RemoteError as exc:
        assert 'NeedsCode' in exc.type_name and exc.message == 'needs a code'
    else:
        raise AssertionError('expected RemoteError')
    try:
        await o.bad_load().result()
    except mosaic.SerialisationError as exc:
        assert 'cannot be rebuilt' in str(exc) and 'Odd.bad_load' in str(exc)
    else:
        raise AssertionError('expected SerialisationError')
    b = Busy.remote()
    try:
        await b.quit(3)
    except SystemExit as exc:
        assert exc.code == 3
    else:
        raise AssertionError('expected SystemExit from the remote method')
    assert await b.ok().result() == 'ok'              # the worker goes on serving
    print('ODD RESULTS PASSED', flush=True)


async def main_sleeps(runtime):
    Busy.remote().ok()
    print('READY', flush=True)
    time.sleep(60)                                     # Ctrl-C must still interrupt this


async def main_unseen_failure(runtime):
    import gc
    b = Busy.remote()
    b.quit(5)                                          # fails; nobody awaits it
    seen = b.quit(6)
    try:
        await seen
    except SystemExit:
        pass
    del seen
    await b.ok()
    gc.collect()
    await b.ok()


async def main_raises_during_big_transfers(runtime):
    # results of hundreds of MiB moving worker to worker when main fails
    a = Busy.remote(runtime=runtime.workers[0])
    b = Busy.remote(runtime=runtime.workers[-1])
    await a
    await b
    for _ in range(4):
        b.consume(a.big(256))
    await asyncio.sleep(0.3)
    raise ValueError('main failed during transfers')


async def main_breaks_a_worker_runtime(runtime):
    b = Busy.remote()
    assert await b.break_runtime().result() is True
    await b.ok()                            # never answered: the worker's runtime fails
    raise AssertionError('unreachable')


def bad_setting():
    mosaic.run(first, max_pendng=10)                  # a typo: every rank makes the same error


def two_step_raises():
    mosaic.init()
    Busy.remote().ok()
    raise RuntimeError('error in the head script before stop()')


def two_step_forgets_stop():
    mosaic.init()
    Busy.remote().slow(0.3)
    print('FORGOT STOP', flush=True)


async def first(runtime):
    return 1


def run_twice():
    mosaic.run(first)
    try:
        mosaic.run(first)
    except mosaic.RuntimeNotRunning as exc:
        print('SECOND RUN REFUSED:', exc, flush=True)


def logs_visible():
    mosaic.run(first, log_level='debug')


if __name__ == '__main__':
    name = sys.argv[1]
    target = globals()[name]
    if name.startswith('main_'):
        mosaic.run(target)
    else:
        target()
