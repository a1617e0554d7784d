"""Summarise ``py-spy record --format raw`` output: where each thread spends its samples.

Record every rank of a benchmark (``$PMI_RANK`` is set by MPICH's launcher)::

    mpiexec -n 2 sh -c 'exec py-spy record -r 200 --threads --format raw \\
        -o /tmp/prof.$PMI_RANK.txt -- python bench/bench_scale.py --sizes 100000'
    python bench/spy_summary.py /tmp/prof.0.txt /tmp/prof.1.txt

For each file and each thread it prints the share of samples per function, inclusive (the
function or anything it called is on the stack) and exclusive (the function itself is running),
with file names shortened to the package-relative path.
"""

import argparse
import collections
import re

_FRAME = re.compile(r'^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$')


def short_frame(frame):
    """``func (path/to/file.py:12)`` -> ``func (file.py)``, package paths kept from the package.

    Parameters
    ----------
    frame : str
        A py-spy frame.

    Returns
    -------
    str
        The shortened frame (lines dropped so a function's samples add up).
    """
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group('file')
    for anchor in ('mosaic_mpi/', 'site-packages/', 'bench/', 'lib/python3'):
        if anchor in path:
            path = path.split(anchor, 1)[1]
            if anchor == 'mosaic_mpi/':
                path = 'mosaic_mpi/' + path
            break
    return f'{match.group("func")} ({path})'


def parse(path):
    """Read a raw py-spy profile.

    Parameters
    ----------
    path : str
        File written by ``py-spy record --format raw``.

    Returns
    -------
    dict
        ``thread name -> list of (frames root first, samples)``.
    """
    threads = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.rstrip('\n')
            if not line:
                continue
            stack, _, count = line.rpartition(' ')
            frames = stack.split(';')
            thread = frames[0]
            threads[thread].append(([short_frame(fr) for fr in frames[1:]], int(count)))
    return threads


def summarise(path, top=15):
    """Print inclusive and exclusive sample shares per thread of one profile.

    Parameters
    ----------
    path : str
        Raw py-spy profile.
    top : int
        Rows per table.
    """
    threads = parse(path)
    total = sum(n for stacks in threads.values() for _, n in stacks)
    print(f'=== {path}: {total} samples ===')
    for thread, stacks in sorted(threads.items(), key=lambda kv: -sum(n for _, n in kv[1])):
        samples = sum(n for _, n in stacks)
        inclusive = collections.Counter()
        exclusive = collections.Counter()
        for frames, n in stacks:
            for frame in set(frames):
                inclusive[frame] += n
            if frames:
                exclusive[frames[-1]] += n
        print(f'--- {thread}: {samples} samples ({100 * samples / total:.0f}%) ---')
        print('  inclusive                                                          | exclusive')
        incl = inclusive.most_common(top)
        excl = exclusive.most_common(top)
        for i in range(max(len(incl), len(excl))):
            left = f'{100 * incl[i][1] / samples:5.1f}% {incl[i][0][:58]}' if i < len(incl) else ''
            right = f'{100 * excl[i][1] / samples:5.1f}% {excl[i][0][:60]}' if i < len(excl) else ''
            print(f'  {left:66s} | {right}')


def main(argv=None):
    """Command line: summarise each file given.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('files', nargs='+', help='raw py-spy profiles')
    parser.add_argument('--top', type=int, default=15, help='rows per table')
    args = parser.parse_args(argv)
    for path in args.files:
        summarise(path, args.top)


if __name__ == '__main__':
    main()
