"""Sphinx configuration of the mosaic_mpi documentation.

Build from the repository root with warnings as errors::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)                        # this checkout's mosaic_mpi, not an installed one
sys.path.insert(0, os.path.join(HERE, '_ext'))

import mosaic_mpi  # noqa: E402  (importing it does not initialise MPI)

project = 'mosaic_mpi'
author = 'the mosaic_mpi developers'
copyright = 'the mosaic_mpi developers, MIT licence'
release = mosaic_mpi.__version__
version = release

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.viewcode',
    'numpydoc',
    'myst_parser',
    'configtable',
]

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
exclude_patterns = ['_build']
root_doc = 'index'

# The Markdown files are also read on GitHub: headings become anchors there and here alike.
myst_heading_anchors = 3
myst_enable_extensions = ['colon_fence']

autodoc_member_order = 'bysource'
autodoc_default_options = {'members': True, 'undoc-members': False, 'show-inheritance': True}
autodoc_mock_imports = []
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

html_theme = 'alabaster'
html_theme_options = {'description': "Mosaic's tessera runtime on MPI", 'fixed_sidebar': True}
html_static_path = []
