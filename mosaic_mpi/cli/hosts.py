"""Which machines the run may use: the batch allocation found in the environment, or this one.

Looked for in the order SLURM, PBS (Mosaic also reads SGE's ``PE_HOSTFILE``; we do not). Unlike
Mosaic, a PBS nodefile's repeated lines (one per process slot) are merged, so ``-n 2`` means two
different machines.
"""

import dataclasses
import enum
import os
import re

__all__ = ['Scheduler', 'Allocation', 'expand_hostlist', 'read_nodefile', 'detect']


class Scheduler(enum.Enum):
    """Where the host list came from."""

    LOCAL = 'local'
    SLURM = 'slurm'
    PBS = 'pbs'


@dataclasses.dataclass(frozen=True)
class Allocation:
    """The machines a run may use.

    Parameters
    ----------
    scheduler : Scheduler
        The batch system that granted them (``LOCAL``: no batch system, this machine only).
    hosts : tuple of str
        Host names in the scheduler's order, each once. Empty for ``LOCAL``.
    cpus : int
        Processors per host the run may use: ``SLURM_CPUS_ON_NODE``, PBS's ``NCPUS``, else this
        machine's logical CPU count.
    """

    scheduler: Scheduler
    hosts: tuple
    cpus: int


_RANGE = re.compile(r'^(\d+)(?:-(\d+))?$')


def _split_top(text, separator=','):
    """Split ``text`` at ``separator`` outside square brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == '[':
            depth += 1
        elif char == ']':
            depth -= 1
            if depth < 0:
                raise ValueError(f'unbalanced "]" in host list {text!r}')
        elif char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f'unbalanced "[" in host list {text!r}')
    parts.append(text[start:])
    return parts


def _expand_one(item, whole):
    """Expand one host-list item such as ``rack[1-2]-n[01-03,7]`` (brackets may repeat)."""
    open_at = item.find('[')
    if open_at < 0:
        return [item]
    close_at = item.index(']', open_at)
    prefix, body, rest = item[:open_at], item[open_at + 1:close_at], item[close_at + 1:]
    numbers = []
    for piece in body.split(','):
        match = _RANGE.match(piece.strip())
        if match is None:
            raise ValueError(f'bad range {piece!r} in host list {whole!r}')
        low, high = match.group(1), match.group(2) or match.group(1)
        width = len(low) if low.startswith('0') else 0      # keep zero padding: n[01-03]
        if int(high) < int(low):
            raise ValueError(f'descending range {piece!r} in host list {whole!r}')
        numbers += [str(k).zfill(width) for k in range(int(low), int(high) + 1)]
    tails = _expand_one(rest, whole)
    return [prefix + number + tail for number in numbers for tail in tails]


def expand_hostlist(text):
    """Expand a SLURM host list expression into host names.

    Parameters
    ----------
    text : str
        E.g. ``'node[01-03,07],gpu5'`` (the syntax of ``SLURM_JOB_NODELIST``, as ``scontrol show
        hostnames`` reads it: comma-separated items, each with any number of bracketed lists of
        numbers and ranges; zero padding is kept).

    Returns
    -------
    list of str
        The host names in order, e.g. ``['node01', 'node02', 'node03', 'node07', 'gpu5']``.

    Raises
    ------
    ValueError
        If the brackets do not balance or a range is not ``N`` or ``N-M`` with ``N <= M``.
    """
    hosts = []
    for item in _split_top(text.strip()):
        item = item.strip()
        if item:
            hosts += _expand_one(item, text)
    return hosts


def read_nodefile(path):
    """The distinct hosts of a PBS nodefile, in the order of their first appearance.

    Parameters
    ----------
    path : str or os.PathLike
        The file ``PBS_NODEFILE`` names: one host per line, repeated once per process slot; only
        the first word of a line counts; blank lines are skipped.

    Returns
    -------
    list of str
        Each host once.

    Raises
    ------
    ValueError
        If the file names no host.
    OSError
        If it cannot be read.
    """
    with open(path, encoding='utf-8') as file:
        words = [line.split()[0] for line in file if line.strip()]
    if not words:
        raise ValueError(f'PBS_NODEFILE {os.fspath(path)} lists no host')
    return list(dict.fromkeys(words))


def _int_or(text, default):
    try:
        value = int(str(text).split('(')[0].split(',')[0])
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


def detect(environ=None, local=False):
    """Find the allocation this process runs in.

    Parameters
    ----------
    environ : mapping, optional
        The environment to read (default ``os.environ``). SLURM: ``SLURM_JOB_ID`` together with
        ``SLURM_JOB_NODELIST`` (or the older ``SLURM_NODELIST``); PBS: ``PBS_NODEFILE``.
    local : bool
        Ignore any scheduler: run on this machine only (``mrun --local``).

    Returns
    -------
    Allocation

    Raises
    ------
    ValueError
        If the SLURM host list cannot be parsed or the PBS nodefile is empty.
    OSError
        If ``PBS_NODEFILE`` names a file that cannot be read.
    """
    environ = os.environ if environ is None else environ
    own_cpus = os.cpu_count() or 1
    if not local:
        nodelist = environ.get('SLURM_JOB_NODELIST') or environ.get('SLURM_NODELIST')
        if environ.get('SLURM_JOB_ID') and nodelist:
            # SLURM_CPUS_ON_NODE is this node's count; like "4" (or "4(x2)" in some versions)
            cpus = _int_or(environ.get('SLURM_CPUS_ON_NODE'), own_cpus)
            return Allocation(Scheduler.SLURM, tuple(expand_hostlist(nodelist)), cpus)
        if environ.get('PBS_NODEFILE'):
            cpus = _int_or(environ.get('NCPUS'), own_cpus)
            return Allocation(Scheduler.PBS, tuple(read_nodefile(environ['PBS_NODEFILE'])), cpus)
    return Allocation(Scheduler.LOCAL, (), own_cpus)
