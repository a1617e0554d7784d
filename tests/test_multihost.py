"""mosaic_mpi across hosts: three network namespaces on this machine, MPI over TCP between them.

The head runs on host 1, worker:1 on host 2 and worker:2 on host 3 (see netns.py for how the hosts
are made and why ``UCX_TLS=tcp``). Skipped, saying why, only where namespaces cannot be made (not
root, no iproute2, a container without CAP_NET_ADMIN); with ``MOSAIC_MPI_MULTIHOST=required`` (set
by ``.ci/multihost``) that fails instead. MPICH's hydra only (its launcher options).
"""

import os
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import HERE, ROOT, _is_openmpi, mpiexec, run_mpi
from netns import Hosts

EXAMPLES = ROOT / 'examples'
sys.path.insert(0, str(EXAMPLES))

from ultrasound.output import read_traces  # noqa: E402

pytestmark = pytest.mark.multihost
MIB64 = 64 << 20


@pytest.fixture(scope='module')
def hosts(tmp_path_factory):
    if _is_openmpi(mpiexec()):
        pytest.skip('the multi-host tests drive MPICH\'s hydra launcher (its -launcher-exec); '
                    'Open MPI across namespaces is not set up')
    made = Hosts(tmp_path_factory.mktemp('netns'), f'mh{os.getpid() % 100000}')
    try:
        made.up()
    except OSError as error:
        reason = f'network namespaces cannot be made here ({error}); they need root'
        if os.environ.get('MOSAIC_MPI_MULTIHOST') == 'required':
            pytest.fail(reason)
        pytest.skip(reason)
    yield made
    made.down()


def run_hosts(hosts, args, timeout=120, cwd=ROOT):
    command, env = hosts.command(args)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env=env, cwd=cwd)
    except subprocess.TimeoutExpired as error:
        hosts.down()
        hosts.up()
        pytest.fail(f'{" ".join(command)} did not end within {timeout} s\n'
                    f'stdout:\n{error.stdout}\nstderr:\n{error.stderr}')
    assert result.returncode == 0, f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}'
    assert not hosts.wait_empty(), 'processes left behind in the hosts'
    return result


def test_workers_know_their_hosts(hosts):
    result = run_hosts(hosts, [HERE / 'mpi_multihost.py', 'hosts', *hosts.names])
    assert 'CASE hosts PASSED' in result.stdout
    assert f"workers: [('worker:1', '{hosts.names[1]}'), ('worker:2', '{hosts.names[2]}')]" \
        in result.stdout


def test_tutorial_output_equals_one_host(hosts):
    local = run_mpi([EXAMPLES / 'tutorial.py'], n=3)
    assert local.returncode == 0, local.stderr
    across = run_hosts(hosts, [EXAMPLES / 'tutorial.py'])
    # Head and worker lines reach the terminal through different pipes: compare them as a whole
    # and, for the head's own lines, in order.
    assert sorted(across.stdout.splitlines()) == sorted(local.stdout.splitlines())
    head = [line for line in local.stdout.splitlines() if not line.startswith('[worker:')]
    assert [line for line in across.stdout.splitlines() if not line.startswith('[worker:')] == head
    assert 'published: 2097152.0' in head


def test_ultrasound_traces_equal_one_host(hosts, tmp_path):
    script = EXAMPLES / 'ultrasound_forward_2d.py'
    options = ['--shots', '2', '--steps', '300', '--transducers', '32']
    local = run_mpi([script, *options, '--output', tmp_path / 'local'], n=3, timeout=150,
                    cwd=ROOT)
    assert local.returncode == 0, local.stdout + local.stderr
    before = hosts.counters()
    across = run_hosts(hosts, [script, *options, '--output', tmp_path / 'across'], timeout=150)
    after = hosts.counters()
    assert '2 worker(s)' in across.stdout
    expected = read_traces(tmp_path / 'local' / 'traces.h5')
    traces = read_traces(tmp_path / 'across' / 'traces.h5')
    assert traces.shape == (2, 32, 300) and np.array_equal(traces, expected)
    assert np.abs(traces).max() > 0
    # each shot's traces (32 x 300 float32 = 37.5 KiB) came to the head over its link
    received = after[hosts.names[0]][0] - before[hosts.names[0]][0]
    assert received >= 2 * 32 * 300 * 4, received


def test_64mib_argument_result_and_forward_cross_the_links(hosts):
    before = hosts.counters()
    result = run_hosts(hosts, [HERE / 'mpi_multihost.py', 'data', *hosts.names])
    after = hosts.counters()
    assert 'CASE data PASSED' in result.stdout, result.stdout
    head, first, second = hosts.names
    moved = {n: (after[n][0] - before[n][0], after[n][1] - before[n][1]) for n in hosts.names}
    report = f'bytes (rx, tx) per host link: {moved}'
    print(report)
    # head -> worker:1: the argument; worker:1 -> head: the result (TCP/IP adds a few %)
    assert MIB64 <= moved[head][1] < MIB64 * 1.15, report
    assert MIB64 <= moved[head][0] < MIB64 * 1.15, report     # not the forwarded 64 MiB
    assert moved[first][0] >= MIB64, report
    # worker:1 -> worker:2: the forward, over host 2's and host 3's links
    assert moved[first][1] >= 2 * MIB64, report                # result to the head + forward
    assert MIB64 <= moved[second][0] < MIB64 * 1.15, report


def test_killed_worker_host_ends_the_job(hosts):
    command, env = hosts.command([HERE / 'mpi_multihost.py', 'busy', *hosts.names])
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env, cwd=ROOT)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in job.stdout], daemon=True).start()
    try:
        line, deadline = '', time.monotonic() + 90
        while 'BUSY' not in line and job.poll() is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
        assert 'BUSY' in line, f'the job did not start: rc {job.poll()}'
        killed = hosts.kill(hosts.names[2])          # host 3 crashes: proxy and worker
        start = time.monotonic()
        try:
            code = job.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f'the job still ran 10 s after host 3 was killed (pids {killed})')
        elapsed = time.monotonic() - start
        stderr = job.stderr.read()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert killed and code != 0, (code, stderr)
    assert elapsed < 10, elapsed
    assert not hosts.wait_empty(5.0), f'processes left behind after the kill: {hosts.pids()}'
    print(f'killed {len(killed)} processes of host 3: mpiexec exited {code} after {elapsed:.2f} s')
