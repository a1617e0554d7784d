"""Progress bars on the head, drawn with tqdm (``gather(..., progress=True)``,
``async_for(..., progress=True)``)."""

import sys

__all__ = ['progress_bar']


def progress_bar(total, description, progress):
    """A tqdm bar for ``total`` items, or ``None`` when none should be drawn.

    Parameters
    ----------
    total : int
        Number of items.
    description : str
        Text before the bar.
    progress : bool or str
        ``False``: no bar. ``True``: a bar only when standard error is a terminal (so batch
        logs and CI output stay clean). ``'always'``: a bar in any case.

    Returns
    -------
    tqdm.tqdm or None

    Raises
    ------
    ValueError
        If ``progress`` is not one of those values.
    """
    if progress not in (False, True, 'always', None):
        raise ValueError(f"progress must be True, False or 'always', not {progress!r}")
    if not progress:
        return None
    if progress is True and not (hasattr(sys.stderr, 'isatty') and sys.stderr.isatty()):
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=description, file=sys.stderr, dynamic_ncols=True)
