"""The collective thread's order and the head-side rules of collective arrays, without MPI."""

import threading

import pytest

import mosaic_mpi as mosaic
from mosaic_mpi.core.collective import is_local
from mosaic_mpi.runtime.collective import CollectiveRunner


def test_jobs_run_by_number_whatever_order_they_are_submitted_in():
    runner = CollectiveRunner(rank=1)
    numbers = [runner.number() for _ in range(6)]
    assert numbers == list(range(6))
    ran, done = [], threading.Event()

    def job(n):
        def run():
            ran.append((n, threading.current_thread().name))
            if n == 5:
                done.set()
        return run

    for n in (3, 1, 4):
        runner.submit(n, job(n))
    runner.submit(2, None)              # skipped: its task failed without running
    runner.submit(5, job(5))
    assert not done.wait(0.2) and ran == []     # number 0 is missing: nothing may run yet
    runner.submit(0, job(0))
    assert done.wait(10)
    assert [n for n, _ in ran] == [0, 1, 3, 4, 5]
    assert {name for _, name in ran} == {'mosaic-collective-1'}
    runner.close()


def test_a_job_that_raises_does_not_stop_the_thread():
    runner = CollectiveRunner(rank=2)
    done = threading.Event()

    def fails():
        raise RuntimeError('boom')

    runner.submit(runner.number(), fails)
    runner.submit(runner.number(), done.set)
    assert done.wait(10)
    runner.close()


def test_local_marks_a_method_and_nothing_else():
    @mosaic.tessera
    class Member:
        def collective(self):
            pass

        @mosaic.local
        def alone(self):
            pass

    assert is_local(Member, 'alone') and not is_local(Member, 'collective')
    assert not is_local(Member, 'missing')
    with pytest.raises(TypeError, match='applies to methods'):
        mosaic.local(3)


def test_comm_outside_a_member_raises_a_clear_error():
    with pytest.raises(mosaic.CollectiveError, match='only available inside the constructor or '
                                                     'a method of a collective tessera array'):
        mosaic.comm()
