"""Worker output reaches the launcher's terminal line by line, prefixed with the worker's name."""

from conftest import HERE, run_mpi


def test_worker_output_is_prefixed_line_by_line():
    result = run_mpi([HERE / 'mpi_output.py'], n=2, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.splitlines()
    err = result.stderr.splitlines()
    for line in ('hello from python', 'raw descriptor line', 'from C stdio', 'two', 'lines',
                 'last words'):
        assert f'[worker:1] {line}' in out, result.stdout
    assert 'head line' in out                               # the head's own output is unchanged
    assert '[worker:1] a user warning' in err, result.stderr
    assert '[worker:1] partial then the rest' in err, result.stderr


def test_prefix_can_be_turned_off():
    result = run_mpi([HERE / 'mpi_output.py'], n=2, timeout=60,
                     env={'MOSAIC_MPI_OUTPUT_PREFIX': 'false'})
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'hello from python' in result.stdout.splitlines()
    assert '[worker:1]' not in result.stdout + result.stderr
