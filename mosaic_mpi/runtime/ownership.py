"""No sharing between a result's readers (section 0: no silent corruption).

A result stays where it was produced and is handed to several readers: local consumers (tasks
on the same worker that take it as an argument), remote consumers and the head (which receive
serialised copies). Two rules keep every reader's view equal to the value as it was produced:

* :func:`snapshot`, when the result is stored: if anything besides the returning method's own
  variable still refers to the returned object (``return self.total``, a view of an attribute),
  a copy is stored; a fresh object is stored as it is (moved, not copied). Tuples, lists and
  dicts are checked one level down. CPython's reference counts tell, at no cost.
* :func:`private`, when a stored value is handed to a local consumer: the consumer gets its own
  copy (a method updating its argument in place, ``x += 1``, cannot change what the next
  consumer receives or what the head fetches later). Immutable values are handed as they are.

A copy costs what ``np.copyto`` costs (``bench/bench_sharing.py``). Objects nested deeper than
one level inside a returned container are not checked: a method returning ``{'a': self.x}`` with
``self.x`` a list it later changes still shares that list with its stored result.
"""

import copy
import sys

import numpy as np

__all__ = ['snapshot', 'private']

_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis))
_CONTAINERS = (tuple, list, dict)


def _refs(obj):
    return sys.getrefcount(obj)


def _probe(value):
    return _refs(value)


def _calibrate():
    held = object()             # one variable of the caller's, as in snapshot()'s callers
    return _probe(held)


# What _refs() reports, inside snapshot(), for an object its caller holds in one variable only:
# measured (the caller's variable, the parameters on the way, getrefcount's argument), so that a
# Python with other reference-counting details gets its own figure.
_SOLE = _calibrate()


def _sole_array(array):
    """Whether ``array`` (and the memory it views) is referenced by its one holder only."""
    if _refs(array) > _SOLE + 1:            # + this function's parameter
        return False
    base = array.base
    while isinstance(base, np.ndarray):     # a view: the owner of its memory must be ours too
        if _refs(base) > _SOLE:             # view.base and this variable
            return False
        base = base.base
    return True


def snapshot(value):
    """The value to store for a task that returned ``value`` (a copy if it is shared).

    The caller must hold ``value`` in exactly one variable when it calls this (no other name,
    argument tuple or attribute of its own).

    Parameters
    ----------
    value : object
        What the method returned.

    Returns
    -------
    object
        ``value`` itself when nothing else refers to it, else a copy.
    """
    if value is None or type(value) in _IMMUTABLE:
        return value
    if isinstance(value, np.ndarray):
        return value if _sole_array(value) else value.copy(order='K')
    if _refs(value) > _SOLE:
        return private(value)
    if isinstance(value, _CONTAINERS):
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            if item is None or type(item) in _IMMUTABLE:
                continue
            # the container's slot stands for the caller's variable, ``item`` for the parameter
            if isinstance(item, np.ndarray):
                if not _sole_array(item):
                    return _copy_items(value)
            elif _refs(item) > _SOLE:
                return _copy_items(value)
    return value


def _copy_items(value):
    if isinstance(value, dict):
        return {k: private(v) for k, v in value.items()}
    items = [private(v) for v in value]
    return type(value)(items) if isinstance(value, list) else _rebuild_tuple(value, items)


def _rebuild_tuple(value, items):
    if type(value) is tuple:
        return tuple(items)
    try:                                    # a named tuple
        return type(value)(*items)
    except TypeError:
        return tuple(items)


def private(value):
    """A copy of a stored value for one reader (immutable values as they are).

    Parameters
    ----------
    value : object

    Returns
    -------
    object
        ``np.ndarray.copy`` for arrays (subclasses and memory order kept), ``copy.deepcopy``
        otherwise; the value itself if it is immutable or cannot be copied.
    """
    if value is None or type(value) in _IMMUTABLE:
        return value
    if type(value) is np.ndarray:
        return value.copy(order='K')
    if type(value) is tuple and all(v is None or type(v) in _IMMUTABLE for v in value):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:                       # cannot be copied (a lock inside, ...): share it
        return value
