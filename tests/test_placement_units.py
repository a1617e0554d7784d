"""Worker handles and their hosts (runtime.workers), without MPI."""

import pytest

from mosaic_mpi.runtime.placement import RoundRobin, WorkerHandle, Workers


def make():
    return Workers([WorkerHandle('worker:1', 1, 'a'), WorkerHandle('worker:2', 2, 'b'),
                    WorkerHandle('worker:3', 3, 'a')])


def test_workers_filter_by_host_in_rank_order():
    workers = make()
    assert workers.hosts == ['a', 'b']
    assert [w.uid for w in workers.on('a')] == ['worker:1', 'worker:3']
    assert workers.on('b') == [workers[1]]
    assert workers[0].host == 'a' and list(workers) == list(make())


def test_unknown_host_names_the_hosts_that_have_workers():
    with pytest.raises(ValueError, match=r"no worker runs on host 'c'; the workers' hosts are "
                                         r"a: worker:1, worker:3; b: worker:2"):
        make().on('c')
    with pytest.raises(ValueError, match='none'):
        Workers().on('a')


def test_a_handle_with_its_host_places_a_tessera():
    workers = make()
    assert RoundRobin(workers).rank_of(workers.on('b')[0]) == 2
    assert WorkerHandle('head', 0).host == ''
