"""mrun's commands for local, SLURM and PBS environments; mscript's jobscripts (no MPI started)."""

import shlex
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT
from mosaic_mpi.cli import hosts, launch, mscript, mrun
from mosaic_mpi.cli.hosts import Allocation, Scheduler
from mosaic_mpi.cli.launch import Flavour, Launcher

THREADS = {name: '3' for name in launch.THREAD_VARIABLES}


# -- host discovery -----------------------------------------------------------------------------


@pytest.mark.parametrize('text, expected', [
    ('vm', ['vm']),
    ('n[01-03,07],gpu5', ['n01', 'n02', 'n03', 'n07', 'gpu5']),
    ('rack[1-2]-n[8-9]', ['rack1-n8', 'rack1-n9', 'rack2-n8', 'rack2-n9']),
    ('a[9-11]', ['a9', 'a10', 'a11']),
    ('x,y[001-002]', ['x', 'y001', 'y002']),
])
def test_slurm_host_lists_expand(text, expected):
    assert hosts.expand_hostlist(text) == expected


@pytest.mark.parametrize('text', ['n[1-3', 'n1-3]', 'n[3-1]', 'n[a-b]'])
def test_bad_slurm_host_lists_are_clear_errors(text):
    with pytest.raises(ValueError, match='host list'):
        hosts.expand_hostlist(text)


def test_slurm_environment_is_detected():
    env = {'SLURM_JOB_ID': '42', 'SLURM_JOB_NODELIST': 'c[1-3]', 'SLURM_CPUS_ON_NODE': '16'}
    assert hosts.detect(env) == Allocation(Scheduler.SLURM, ('c1', 'c2', 'c3'), 16)
    old = {'SLURM_JOB_ID': '42', 'SLURM_NODELIST': 'c7'}            # older variable name
    assert hosts.detect(old).hosts == ('c7',)
    assert hosts.detect(env, local=True).scheduler is Scheduler.LOCAL
    assert hosts.detect({'SLURM_JOB_NODELIST': 'c1'}).scheduler is Scheduler.LOCAL   # no job


def test_pbs_nodefile_hosts_are_deduplicated_in_order(tmp_path):
    nodefile = tmp_path / 'nodes'
    nodefile.write_text('b2\nb2\nb2\na1 extra\n\na1\nc3\nb2\n')
    env = {'PBS_NODEFILE': str(nodefile), 'NCPUS': '8'}
    assert hosts.detect(env) == Allocation(Scheduler.PBS, ('b2', 'a1', 'c3'), 8)
    nodefile.write_text('\n')
    with pytest.raises(ValueError, match='lists no host'):
        hosts.detect(env)


def test_outside_any_allocation_it_is_this_machine():
    allocation = hosts.detect({})
    assert allocation.scheduler is Scheduler.LOCAL and allocation.hosts == ()
    assert allocation.cpus >= 1


# -- launch commands ----------------------------------------------------------------------------

LOCAL = Allocation(Scheduler.LOCAL, (), 2)
SLURM = Allocation(Scheduler.SLURM, ('n1', 'n2', 'n3'), 8)
PBS = Allocation(Scheduler.PBS, ('p1', 'p2'), 8)
CMD = ['python', 'script.py', '--shots', '4']


def test_local_hydra_command_and_thread_variables():
    plan = launch.build(CMD, allocation=LOCAL, workers=2, threads=3, mpiexec='/x/mpiexec',
                        flavour=Flavour.HYDRA)
    assert plan.argv == ('/x/mpiexec', '-n', '3', '-disable-auto-cleanup', *CMD)
    assert plan.env == THREADS
    assert plan.placement == ((None, 3),) and plan.ranks == 3


def test_local_openmpi_oversubscribes_only_beyond_the_cpus():
    over = launch.build(CMD, allocation=LOCAL, workers=2, threads=1, mpiexec='mpiexec',
                        flavour=Flavour.OPENMPI)
    exports = [word for name in launch.THREAD_VARIABLES for word in ('-x', name)]
    assert over.argv == ('mpiexec', '-n', '3', '--enable-recovery', '--oversubscribe', *exports,
                         *CMD)
    fits = launch.build(CMD, allocation=LOCAL, workers=1, threads=1, mpiexec='mpiexec',
                        flavour=Flavour.OPENMPI)
    assert fits.argv == ('mpiexec', '-n', '2', '--enable-recovery', *exports, *CMD)


def test_default_threads_share_the_cpus_among_the_workers():
    plan = launch.build(CMD, allocation=SLURM, workers=3, launcher=Launcher.SRUN)
    assert plan.env['OMP_NUM_THREADS'] == '2'                      # 8 CPUs // 3 workers
    plan = launch.build(CMD, allocation=LOCAL, workers=4, mpiexec='m', flavour=Flavour.HYDRA)
    assert plan.env['NUMBA_NUM_THREADS'] == '1'                    # never below 1


def test_slurm_one_node_is_srun_pmi2_on_the_first_host():
    plan = launch.build(CMD, allocation=SLURM, workers=2, threads=3)
    assert plan.argv == ('srun', '--mpi=pmi2', '--quit-on-interrupt', '--nodes=1', '--ntasks=3',
                         '--nodelist=n1', *CMD)
    assert plan.env == THREADS and plan.hostfile == ()


def test_slurm_several_nodes_put_the_head_on_the_first_host():
    plan = launch.build(CMD, allocation=SLURM, nodes=2, workers=2, threads=3, cpus_per_task=3)
    assert plan.argv == ('srun', '--mpi=pmi2', '--quit-on-interrupt', '--nodes=2', '--ntasks=5',
                         '--cpus-per-task=3', '--distribution=arbitrary', *CMD)
    assert plan.hostfile == ('n1', 'n1', 'n1', 'n2', 'n2')        # rank 0 (head) on n1
    assert plan.placement == (('n1', 3), ('n2', 2))


def test_slurm_free_head_gets_a_host_of_its_own():
    plan = launch.build(CMD, allocation=SLURM, nodes=2, workers=2, threads=1, free_head=True)
    assert plan.hostfile == ('n1', 'n2', 'n2', 'n3', 'n3')
    with pytest.raises(ValueError, match='needs 4 hosts, but the SLURM allocation has 3'):
        launch.build(CMD, allocation=SLURM, nodes=3, workers=1, free_head=True)


def test_slurm_with_mpiexec_gives_hydra_and_openmpi_their_host_lists():
    hydra = launch.build(CMD, allocation=SLURM, nodes=3, workers=2, threads=3,
                         launcher=Launcher.MPIEXEC, mpiexec='mpiexec', flavour=Flavour.HYDRA)
    assert hydra.argv == ('mpiexec', '-n', '7', '-disable-auto-cleanup', '-hosts', 'n1:3,n2:2,n3:2',
                          *CMD)
    ompi = launch.build(CMD, allocation=SLURM, nodes=2, workers=2, threads=3,
                        launcher=Launcher.MPIEXEC, mpiexec='mpiexec', flavour=Flavour.OPENMPI)
    assert ompi.argv[:6] == ('mpiexec', '-n', '5', '--enable-recovery', '--host', 'n1:3,n2:2')
    assert '--oversubscribe' not in ompi.argv and ompi.argv[-4:] == tuple(CMD)


def test_pbs_uses_mpiexec_on_the_deduplicated_hosts(tmp_path):
    nodefile = tmp_path / 'nodes'
    nodefile.write_text('p1\n' * 4 + 'p2\n' * 4)
    allocation = hosts.detect({'PBS_NODEFILE': str(nodefile), 'NCPUS': '4'})
    plan = launch.build(CMD, allocation=allocation, nodes=2, workers=3, mpiexec='mpiexec',
                        flavour=Flavour.HYDRA)
    assert plan.argv == ('mpiexec', '-n', '7', '-disable-auto-cleanup', '-hosts', 'p1:4,p2:3',
                         *CMD)
    assert plan.env['OMP_NUM_THREADS'] == '1'                      # NCPUS 4 // 3 workers


@pytest.mark.parametrize('kwargs, message', [
    (dict(allocation=LOCAL, nodes=2), 'no batch allocation was found'),
    (dict(allocation=PBS, nodes=3), 'needs 3 hosts, but the PBS allocation has 2: p1,p2'),
    (dict(allocation=LOCAL, workers=0), 'at least 1 node and 1 worker'),
    (dict(allocation=LOCAL, threads=0), 'at least 1'),
    (dict(allocation=PBS, launcher=Launcher.SRUN), 'needs a SLURM allocation'),
    (dict(allocation=PBS, nodes=2, flavour=Flavour.OTHER), 'neither MPICH/hydra nor Open MPI'),
])
def test_impossible_launches_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        launch.build(CMD, mpiexec='mpiexec', **{'flavour': Flavour.HYDRA, **kwargs})


def test_empty_command_is_a_clear_error():
    with pytest.raises(ValueError, match='no command to run'):
        launch.build([], allocation=LOCAL, mpiexec='m', flavour=Flavour.HYDRA)


def test_this_machines_mpiexec_kind_is_recognised():
    mpiexec = launch.find_mpiexec()
    version = subprocess.run([mpiexec, '--version'], capture_output=True, text=True).stdout
    expected = Flavour.OPENMPI if 'Open MPI' in version else Flavour.HYDRA
    assert launch.mpi_flavour(mpiexec) is expected
    assert launch.mpi_flavour('/nonexistent/mpiexec') is Flavour.OTHER


# -- the mrun command line ----------------------------------------------------------------------


def dry_run(args, env):
    clean = {'PATH': '/usr/bin:/bin'}
    result = CliRunner().invoke(mrun.mrun, ['--dry-run', *args], env={**clean, **env},
                                catch_exceptions=False)
    return result


@pytest.fixture
def no_scheduler(monkeypatch):
    for name in ('SLURM_JOB_ID', 'SLURM_JOB_NODELIST', 'SLURM_NODELIST', 'PBS_NODEFILE'):
        monkeypatch.delenv(name, raising=False)


def test_mrun_dry_run_local(no_scheduler):
    result = dry_run(['-nw', '2', '-nth', '3', '--mpiexec', '/x/mpiexec',
                      'python', 'script.py', '-n', '5'], {})
    assert result.exit_code == 0, result.output
    comment, line = result.output.strip().splitlines()
    assert comment == '# 3 ranks; this machine: head + 2 workers'
    words = shlex.split(line)
    assert words[:4] == [f'{name}=3' for name in launch.THREAD_VARIABLES]
    # the script keeps its own -n
    assert words[4:] == ['/x/mpiexec', '-n', '3', 'python', 'script.py', '-n', '5']


def test_mrun_dry_run_inside_slurm(no_scheduler, monkeypatch):
    monkeypatch.setenv('SLURM_JOB_ID', '7')
    monkeypatch.setenv('SLURM_JOB_NODELIST', 'gpu[1-2]')
    result = dry_run(['-n', '2', '-nw', '1', '-nth', '4', '--debug', 'python', 's.py'], {})
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == '# 3 ranks; gpu1: head + 1 worker; gpu2: 1 worker'
    assert lines[1] == '# SLURM_HOSTFILE lists: gpu1,gpu1,gpu2'
    words = shlex.split(lines[2])
    assert 'MOSAIC_MPI_LOG_LEVEL=debug' in words and 'OMP_NUM_THREADS=4' in words
    start = words.index('srun')
    assert words[start:] == ['srun', '--mpi=pmi2', '--quit-on-interrupt', '--nodes=2',
                             '--ntasks=3', '--cpus-per-task=4', '--distribution=arbitrary',
                             'python', 's.py']


def test_mrun_usage_errors_name_the_problem(no_scheduler):
    result = CliRunner().invoke(mrun.mrun, ['-n', '2', 'python', 's.py'])
    assert result.exit_code == 2 and 'no batch allocation was found' in result.output
    result = CliRunner().invoke(mrun.mrun, ['-nw', '2'])
    assert result.exit_code == 2 and 'COMMAND' in result.output


# -- mscript and the templates ------------------------------------------------------------------

FLAVOURS = [(scheduler, gpus) for scheduler in mscript.SCHEDULERS for gpus in (0, 2)]


@pytest.mark.parametrize('scheduler, gpus', FLAVOURS)
def test_templates_are_valid_bash(scheduler, gpus):
    path = mscript.template_path(scheduler, gpu=gpus > 0)
    result = subprocess.run(['bash', '-n', str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('nodes', [1, 4])
@pytest.mark.parametrize('scheduler, gpus', FLAVOURS)
def test_mscript_renders_every_template(tmp_path, scheduler, gpus, nodes):
    out = tmp_path / 'job.sh'
    args = [scheduler, 'fwd', '-n', str(nodes), '-nw', '3', '-nth', '4', '-m', '16',
            '--time', '02:30:00', '--gpus', str(gpus), '--venv', '/opt/env', '-o', str(out),
            '--', 'python', 'forward.py', '--out', 'o-$JOB', "it's"]
    result = CliRunner().invoke(mscript.mscript, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert '{{' not in text and '}}' not in text
    check = subprocess.run(['bash', '-n', str(out)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    body = [line for line in text.splitlines() if line and not line.startswith('#')]
    assert all('#' in line for line in body), 'every command line carries a comment'
    mrun_line = next(line for line in body if line.startswith('mrun '))
    assert shlex.split(mrun_line.split('   #')[0]) == [
        'mrun', '--verbose', '-n', str(nodes), '-nw', '3', '-nth', '4', 'python', 'forward.py',
        '--out', 'o-$JOB', "it's"]
    assert '"o-$JOB"' in mrun_line                                # expanded when the job runs
    assert ". /opt/env/bin/activate" in text
    if scheduler == 'slurm':
        for directive in ('--job-name=fwd', f'--nodes={nodes}', '--ntasks-per-node=4',
                          '--cpus-per-task=4', '--mem=16G', '--time=02:30:00'):
            assert f'#SBATCH {directive}\n' in text
        assert ('#SBATCH --gpus-per-node=2\n' in text) == (gpus > 0)
    else:
        select = f'#PBS -l select={nodes}:ncpus=16:mpiprocs=4:ompthreads=4'
        select += ':ngpus=2' if gpus else ''
        assert select + ':mem=16gb\n' in text
        assert '#PBS -N fwd\n' in text and '#PBS -l walltime=02:30:00\n' in text
    assert ('nvidia-smi' in text) == (gpus > 0)


def test_mscript_defaults_follow_mosaic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(mscript.mscript, ['slurm', 'job', '--venv', ''])
    assert result.exit_code == 0, result.output
    text = (tmp_path / 'slurm_run.sh').read_text()
    assert 'mrun --verbose -n 1 -nw 1 -nth 1 python forward.py' in text
    assert "#SBATCH --mem" not in text and 'no virtual environment' in text


@pytest.mark.parametrize('args, message', [
    (['slurm', '2bad'], 'job name must be a letter'),
    (['slurm', 'ok', '--time', '90'], '--time must be HH:MM:SS'),
    (['slurm', 'ok', '-nw', '0'], '-nw must be at least 1'),
    (['pbs', 'ok', '--launcher', 'srun'], 'srun is for SLURM'),
    (['slurm', 'ok', '-m', '0'], 'must be > 0'),
])
def test_mscript_bad_values_are_clear_errors(args, message):
    result = CliRunner().invoke(mscript.mscript, [*args, '-o', '-'])
    assert result.exit_code == 2 and message in result.output


EXAMPLES = ROOT / 'jobscripts'


def example_commands():
    """The mscript lines recorded in jobscripts/README.md, as (file, argument list)."""
    readme = (EXAMPLES / 'README.md').read_text()
    found = []
    for line in readme.splitlines():
        if line.startswith('mscript '):
            words = shlex.split(line)
            found.append((words[words.index('-o') + 1], words[1:]))
    return found


@pytest.mark.parametrize('path, args', example_commands())
def test_jobscript_examples_are_what_mscript_writes(tmp_path, path, args):
    out = tmp_path / 'job.sh'
    args = [str(out) if a == path else a for a in args]
    result = CliRunner().invoke(mscript.mscript, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    expected = out.read_text().replace(str(out), path)
    assert (ROOT / path).read_text() == expected, f'regenerate {path} with mscript'
