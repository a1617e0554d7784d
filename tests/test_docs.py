"""The documentation site (docs/): the generated configuration table and a full -W build."""

import dataclasses
import os
import subprocess
import sys

import pytest

import mosaic_mpi
from mosaic_mpi.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, 'docs')
sys.path.insert(0, os.path.join(DOCS, '_ext'))

import configtable  # noqa: E402


def test_config_table_has_every_field_with_its_variable_and_default():
    rows = {row[0].strip('`'): row for row in configtable.rows()}
    fields = dataclasses.fields(Config)
    assert list(rows) == [f.name for f in fields]
    for field in fields:
        name, env, default, meaning = rows[field.name]
        if field.name == 'comm':
            assert env == '(not settable)'
        else:
            assert env == f'``MOSAIC_MPI_{field.name.upper()}``'
        assert default == f'``{field.default!r}``'
        assert len(meaning) > 20
    text = configtable.render()
    assert text.count('   * - ') == len(fields) + 1          # + the header row
    assert 'MOSAIC_MPI_MAX_PENDING' in text and '``100000``' in text


def test_config_table_refuses_a_field_the_docstring_does_not_describe(monkeypatch):
    described = configtable._meanings()
    del described['max_pending']
    monkeypatch.setattr(configtable, '_meanings', lambda: described)
    with pytest.raises(ValueError, match='Config.max_pending is not described'):
        configtable.rows()


def test_importing_the_package_does_not_start_mpi():
    code = ('import sys, mosaic_mpi, mosaic_mpi.trace, mosaic_mpi.runtime.runtime; '
            'print("mpi4py" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == 'False'


@pytest.mark.timeout(240)
def test_docs_build_with_warnings_as_errors(tmp_path):
    out = tmp_path / 'html'
    done = subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-E',
                           '-b', 'html', '-d', str(tmp_path / 'doctrees'), DOCS, str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'WARNING' not in done.stderr
    table = (out / 'configuration.html').read_text()
    for field in dataclasses.fields(Config):
        assert f'<span class="pre">{field.name}</span>' in table
        if field.name != 'comm':
            assert f'MOSAIC_MPI_{field.name.upper()}' in table
    api = (out / 'api.html').read_text()
    for anchor in ('mosaic_mpi.api.run', 'mosaic_mpi.runtime.runtime.Runtime.put',
                   'mosaic_mpi.runtime.runtime.Runtime.async_for', 'mosaic_mpi.config.Config',
                   'mosaic_mpi.errors.DeadlockError', 'mosaic_mpi.trace.load',
                   'mosaic_mpi.core.task.TaskProxy', 'mosaic_mpi.core.tessera.tessera'):
        assert f'id="{anchor}"' in api, anchor
    for name in mosaic_mpi.__all__:                 # every public name has its entry
        if name != '__version__':
            obj = getattr(mosaic_mpi, name)
            assert f'id="{obj.__module__}.{obj.__qualname__}"' in api, name
