"""Draw a task timeline: ``python -m mosaic_mpi.trace trace.json -o timeline.png``.

``trace.json`` is the Chrome Trace Event file a run writes with ``trace='trace.json'`` (or
``MOSAIC_MPI_TRACE``); it also opens in Perfetto (https://ui.perfetto.dev). The picture has one
row per worker, each task a bar from its start to its end, coloured by method, and each row's
busy fraction in its label. Needs matplotlib (``pip install matplotlib``).
"""

import argparse
import json
import sys

__all__ = ['load', 'busy_fractions', 'draw', 'main']


def load(path):
    """The complete (``"ph": "X"``) task events and process names of a trace file.

    Parameters
    ----------
    path : str
        A Chrome Trace Event JSON file written by mosaic_mpi.

    Returns
    -------
    tasks : list of dict
        The task events (times ``ts`` and ``dur`` in microseconds).
    names : dict
        ``pid -> process name`` (``'worker:1'``, ...).

    Raises
    ------
    ValueError
        If the file is not a trace (no ``traceEvents``).
    """
    with open(path) as f:
        trace = json.load(f)
    if not isinstance(trace, dict) or 'traceEvents' not in trace:
        raise ValueError(f'{path} is not a Chrome Trace Event file (no "traceEvents")')
    events = trace['traceEvents']
    names = {e['pid']: e['args']['name'] for e in events
             if e.get('ph') == 'M' and e.get('name') == 'process_name'}
    tasks = [e for e in events if e.get('ph') == 'X']
    return tasks, names


def busy_fractions(tasks):
    """Fraction of the traced span during which each process ran a task.

    Parameters
    ----------
    tasks : list of dict
        Task events as returned by :func:`load`.

    Returns
    -------
    dict
        ``pid -> fraction`` in [0, 1] (overlapping tasks of one process counted once).
    """
    if not tasks:
        return {}
    start = min(t['ts'] for t in tasks)
    span = max(t['ts'] + t['dur'] for t in tasks) - start
    fractions = {}
    for pid in {t['pid'] for t in tasks}:
        busy, end = 0.0, None
        for t in sorted((t for t in tasks if t['pid'] == pid), key=lambda t: t['ts']):
            a, b = t['ts'], t['ts'] + t['dur']
            if end is None or a > end:
                busy += b - a
                end = b
            elif b > end:
                busy += b - end
                end = b
        fractions[pid] = busy / span if span > 0 else 1.0
    return fractions


def draw(path, output, title=None):
    """Draw the timeline of ``path`` into the image file ``output``.

    Parameters
    ----------
    path : str
        The trace file.
    output : str
        Image path (``.png``, ``.svg``, ``.pdf``: any format matplotlib writes).
    title : str, optional
        Title of the figure (default: the trace file's name).

    Returns
    -------
    dict
        ``pid -> busy fraction`` of each row drawn.

    Raises
    ------
    ValueError
        If the trace holds no task.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    tasks, names = load(path)
    if not tasks:
        raise ValueError(f'{path} holds no task to draw')
    fractions = busy_fractions(tasks)
    origin = min(t['ts'] for t in tasks)
    pids = sorted({t['pid'] for t in tasks})
    methods = sorted({t['name'] for t in tasks})
    colours = plt.get_cmap('tab10')
    colour = {m: colours(i % 10) for i, m in enumerate(methods)}
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.6 * len(pids)))
    for row, pid in enumerate(pids):
        for t in (t for t in tasks if t['pid'] == pid):
            ax.broken_barh([((t['ts'] - origin) / 1e6, max(t['dur'], 1.0) / 1e6)],
                           (row - 0.4, 0.8), facecolors=colour[t['name']],
                           edgecolors='black' if t.get('cat') == 'failed' else 'none')
    ax.set_yticks(range(len(pids)))
    ax.set_yticklabels([f'{names.get(pid, pid)} ({100 * fractions[pid]:.0f} % busy)'
                        for pid in pids])
    ax.invert_yaxis()
    ax.set_xlabel('time since the first task (s)')
    handles = [matplotlib.patches.Patch(color=colour[m], label=m) for m in methods[:10]]
    ax.legend(handles=handles, loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize='small',
              frameon=False)
    ax.set_title(title or path)
    fig.tight_layout()
    fig.savefig(output, dpi=120, bbox_inches='tight')
    plt.close(fig)
    return fractions


def main(argv=None):
    """Command line: ``python -m mosaic_mpi.trace TRACE.json [-o timeline.png]``.

    Returns
    -------
    int
        Exit code.
    """
    parser = argparse.ArgumentParser(prog='python -m mosaic_mpi.trace', description=__doc__)
    parser.add_argument('trace', help='the trace file a run wrote (trace=... or MOSAIC_MPI_TRACE)')
    parser.add_argument('-o', '--output', default='timeline.png', help='image to write')
    parser.add_argument('--title', default=None, help='figure title')
    args = parser.parse_args(argv)
    try:
        fractions = draw(args.trace, args.output, args.title)
    except (OSError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    _, names = load(args.trace)
    print(f'{args.output}: ' + ', '.join(f'{names.get(pid, f"rank {pid}")} {100 * f:.0f} % busy'
                                         for pid, f in sorted(fractions.items())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
