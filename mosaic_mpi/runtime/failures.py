"""Exceptions across ranks: pack a remote exception with its traceback, rebuild it on the caller.

The rebuilt exception has the original type and message (when it can be pickled; otherwise it is a
:class:`~mosaic_mpi.errors.RemoteError` with the type name, message and traceback text) and a
:class:`~mosaic_mpi.errors.RemoteTraceback` as ``__cause__``, naming the rank, tessera and method, in
the way :mod:`concurrent.futures.process` and ``mpi4py.futures`` report remote tracebacks.
"""

import traceback

from ..errors import RemoteError, RemoteTraceback
from ..serialisation import dumps, loads

__all__ = ['pack_error', 'unpack_error', 'format_remote']


def format_remote(exc, where):
    """Format ``exc`` and its traceback, headed by ``where`` (rank, tessera, method)."""
    text = ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f'{where}\n{text}'


def _info(exc, where):
    cause = exc.__cause__
    cause_info = None
    if where:
        text = format_remote(exc, where)          # raised here: the chain is in the text
    elif isinstance(cause, RemoteTraceback):
        text = cause.text                         # raised elsewhere: keep its remote traceback
    else:
        text = ''
        if cause is not None:
            cause_info = _info(cause, '')
    try:
        packed = dumps(exc, lock=False)
        loads(packed)               # some exceptions pickle but cannot be rebuilt (extra __init__ args)
        picklable = packed
    except Exception:
        picklable = None
    return (picklable, f'{type(exc).__module__}.{type(exc).__qualname__}', str(exc), text,
            cause_info)


def pack_error(exc, where):
    """Serialise an exception for the caller.

    Parameters
    ----------
    exc : BaseException
        The exception, with its ``__traceback__``.
    where : str
        Header of the remote traceback if ``exc`` was raised on this rank, e.g.
        ``'worker:1, tessera Solver(7), method solve'``; ``''`` for an exception that only passes
        through (its remote traceback or its ``__cause__`` chain is kept).

    Returns
    -------
    Payload
        The packed error.
    """
    return dumps(_info(exc, where), lock=False)


def _rebuild(info):
    packed, type_name, message, text, cause_info = info
    exc = None
    if packed is not None:
        try:
            exc = loads(packed)
        except Exception:           # its class is not importable here, for instance
            exc = None
    if exc is None:
        exc = RemoteError(type_name, message, text)
    if cause_info is not None:
        exc.__cause__ = _rebuild(cause_info)
    elif text:
        exc.__cause__ = RemoteTraceback(text)
    return exc


def unpack_error(payload):
    """Rebuild the exception :func:`pack_error` packed (a fresh object at every call).

    Parameters
    ----------
    payload : Payload
        As returned by :func:`pack_error`.

    Returns
    -------
    BaseException
        The exception, with the remote traceback or upstream error as ``__cause__``.
    """
    return _rebuild(loads(payload))
