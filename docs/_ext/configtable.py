"""Sphinx directive ``.. mosaic-config-table::``: the table of every :class:`Config` field.

The rows are made from ``dataclasses.fields(mosaic_mpi.config.Config)`` and the ``Parameters``
section of its docstring at build time, so the table cannot fall behind the code.
:func:`rows` and :func:`render` are used by ``tests/test_docs.py`` as well.
"""

import dataclasses

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

from mosaic_mpi import config as _config

__all__ = ['rows', 'render', 'setup']


def _meanings():
    from numpydoc.docscrape import NumpyDocString
    doc = NumpyDocString(_config.Config.__doc__)
    return {p.name: ' '.join(' '.join(p.desc).split()) for p in doc['Parameters']}


def rows():
    """One ``(name, environment variable, default, meaning)`` per field of ``Config``, in order.

    Returns
    -------
    list of tuple of str

    Raises
    ------
    ValueError
        If a field has no entry in the ``Parameters`` section of ``Config``'s docstring.
    """
    meanings = _meanings()
    table = []
    for field in dataclasses.fields(_config.Config):
        if field.name not in meanings:
            raise ValueError(f'Config.{field.name} is not described in the Parameters section '
                             f'of the Config docstring')
        env = ('(not settable)' if field.name == 'comm'
               else f'``{_config._ENV_PREFIX}{field.name.upper()}``')
        table.append((f'``{field.name}``', env, f'``{field.default!r}``',
                      meanings[field.name]))
    return table


def render():
    """The table as reStructuredText (a ``list-table``).

    Returns
    -------
    str
    """
    lines = ['.. list-table::', '   :header-rows: 1', '   :widths: 14 24 12 50', '',
             '   * - key', '     - environment variable', '     - default', '     - meaning']
    for row in rows():
        lines.append(f'   * - {row[0]}')
        lines.extend(f'     - {cell}' for cell in row[1:])
    return '\n'.join(lines) + '\n'


class ConfigTable(SphinxDirective):
    """Insert :func:`render`'s table."""

    has_content = False

    def run(self):
        self.env.note_dependency(_config.__file__)
        container = nodes.container()
        self.state.nested_parse(StringList(render().splitlines(), source='mosaic_mpi/config.py'),
                                self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive('mosaic-config-table', ConfigTable)
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': True}
