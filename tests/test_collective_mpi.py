"""Collective tessera arrays (S29) under a real mpiexec: scenarios in mpi_collective.py."""

import pytest

from conftest import HERE, run_mpi

SCRIPT = HERE / 'mpi_collective.py'

# A short heartbeat timeout, so that a member blocked in a collective for 3 s would be declared
# lost if its rank stopped sending heartbeats meanwhile.
QUICK_HEARTBEATS = {'MOSAIC_MPI_HEARTBEAT': '0.2', 'MOSAIC_MPI_HEARTBEAT_TIMEOUT': '1.5'}


@pytest.mark.parametrize('case, n', [('ranks_and_allreduce', 3), ('ranks_and_allreduce', 4),
                                     ('two_arrays_sharing_workers_keep_one_order', 3),
                                     ('member_blocked_in_a_collective_leaves_its_worker_working',
                                      3),
                                     ('bad_input', 3), ('arrays_made_and_dropped', 3),
                                     ('member_passed_to_a_tessera_lives_while_referenced', 3),
                                     ('unpicklable_constructor_argument_sends_nothing', 3),
                                     ('methods_return_proxies', 3),
                                     ('arrays_made_while_a_worker_builds_tesserae_there', 3)])
def test_case(case, n):
    env = QUICK_HEARTBEATS if case.startswith('member_blocked') else None
    result = run_mpi([SCRIPT, case], n=n, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f'CASE {case} PASSED' in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize('case', ['failed_member_raises_at_once',
                                  'failed_constructor_raises_at_once'])
def test_a_member_failing_before_its_collective_ends_the_run_instead_of_hanging(case):
    # The other member waits in a Barrier the failed one never reaches (as in plain MPI): the
    # head raises the failure at once, main ends with it, and every rank exits (the one inside
    # the Barrier without MPI_Finalize; hydra may then end the job with its own kill).
    result = run_mpi([SCRIPT, case], n=3, timeout=60)
    assert f'CASE {case} RAISED' in result.stdout, result.stdout + result.stderr
    assert result.returncode != 0, result.stdout + result.stderr


def test_a_failed_member_that_main_catches_ends_the_run_instead_of_hanging():
    # main returns normally, but a member still waits in a collective for the failed one: the
    # drain cannot end. The head names the stuck call and ends the job with a non-zero code.
    result = run_mpi([SCRIPT, 'failed_member_caught_by_main'], n=3, timeout=60)
    output = result.stdout + result.stderr
    assert 'CASE failed_member_caught_by_main RETURNS' in result.stdout, output
    assert result.returncode != 0, output
    assert ('the run cannot end normally: Member.fail_on (task' in result.stderr
            and 'failed on worker:' in result.stderr
            and 'ValueError: member 1 fails before its collective' in result.stderr
            and 'wait in a collective the failed member never joined' in result.stderr), output
