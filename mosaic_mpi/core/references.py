"""References to a task's outputs and completion, usable as arguments of other calls.

``t.outputs`` is a :class:`TaskOutputGenerator`; ``t.outputs[i]`` a :class:`TaskOutput`;
``t.done`` / ``t.outputs.done`` a :class:`TaskDone`. None of them moves data or sends anything by
itself. Re-exported by :mod:`mosaic_mpi.core.task`.
"""

import contextlib
import threading

from .. import context
from ..messages import Select

__all__ = ['TaskOutputGenerator', 'TaskOutput', 'TaskDone', 'TaskRemote', 'client_of',
           'uncounted', 'counting', 'recording', 'record', 'bound_client']

class _Pickling(threading.local):
    off = False             # (a class default: reading it costs no AttributeError)
    tokens = None           # a list collecting the counted pickles (see recording())


_pickling = _Pickling()


@contextlib.contextmanager
def uncounted():
    """Pickle proxies without counting them as references in flight, in this thread.

    For pickles that are measured and thrown away (``Ask.SIZE``), or unpickled on several ranks
    (a published object): see :mod:`mosaic_mpi.runtime.borrowers`.
    """
    before = _pickling.off
    _pickling.off = True
    try:
        yield
    finally:
        _pickling.off = before


@contextlib.contextmanager
def recording():
    """Collect, in this thread, the references counted as in flight by the pickles made inside.

    An array call pickles its arguments once for all its members (each member unpickles them
    on its own): the caller then counts one more token per extra member for each reference
    collected here (``Client.submit_array_call``).

    Yields
    ------
    list of tuple
        ``(uid, kind, where)`` of each counted pickle, in order.
    """
    before = _pickling.tokens
    tokens = _pickling.tokens = []
    try:
        yield tokens
    finally:
        _pickling.tokens = before


def record(uid, kind, where):
    """Note a counted pickle of ``uid`` for :func:`recording` (nothing outside it)."""
    tokens = _pickling.tokens
    if tokens is not None:
        tokens.append((uid, kind, where))


def counting():
    """bool: whether proxies pickled now count as references in flight."""
    return not _pickling.off


def bound_client():
    """The client of this rank's running runtime, or ``None`` (unpickling outside a run)."""
    runtime = context.current()
    return getattr(runtime, 'client', None)


def client_of(state):
    """The client that tracks ``state``, bound to this rank's runtime on first use."""
    if state.client is None:
        state.client = context.require().client
    return state.client


class TaskOutputGenerator:
    """Hands out references to single outputs of a task.

    ``gen[i]`` is output ``i`` of a tuple result (for a non-tuple result, index 0 is the whole
    value); ``gen['key']`` an item of a dict result; ``gen.done`` the completion.
    """

    __slots__ = ('_proxy',)

    def __init__(self, proxy):
        self._proxy = proxy

    def __getitem__(self, key):
        if not isinstance(key, (int, str)) or isinstance(key, bool):
            raise TypeError(f'task outputs are indexed by int or str, not {type(key).__name__}')
        return TaskOutput(key, self._proxy)

    def __iter__(self):
        raise TypeError('the number of outputs of a task is not known before it runs: index '
                        'them (t.outputs[0], t.outputs[1], ...) instead of unpacking')

    @property
    def done(self):
        """TaskDone: reference to the task's completion."""
        return TaskDone(self._proxy)


class _TaskReference:
    """What :class:`TaskOutput` and :class:`TaskDone` share: they stand for their task.

    ``uid``, ``state``, ``runtime_id``, ``tessera_id``, ``init_future``, ``done_future``,
    :meth:`init`, :meth:`wait` and :meth:`add_done_callback` are the task proxy's; ``await ref``
    waits for the task and returns its :class:`~mosaic_mpi.core.task.TaskProxy`, as in Mosaic.
    """

    __slots__ = ()

    @property
    def uid(self):
        """int: the task's id."""
        return self.proxy.uid

    @property
    def state(self):
        """TaskStatus: the task's status as last reported to this rank."""
        return self.proxy.state

    @property
    def runtime_id(self):
        """str: uid of the worker running the task."""
        return self.proxy.runtime_id

    @property
    def tessera_id(self):
        """int: id of the tessera the task runs on."""
        return self.proxy.tessera_id

    @property
    def init_future(self):
        """asyncio.Future: the task's (see ``TaskProxy.init_future``)."""
        return self.proxy.init_future

    @property
    def done_future(self):
        """asyncio.Future: the task's (see ``TaskProxy.done_future``)."""
        return self.proxy.done_future

    async def init(self):
        """Wait until the task has reached its worker; returns the task proxy."""
        return await self.proxy.init()

    def wait(self):
        """Whether the task has finished (see ``TaskProxy.wait``)."""
        return self.proxy.wait()

    def add_done_callback(self, fn):
        """Call ``fn(task_proxy)`` when the task finishes (see ``TaskProxy.add_done_callback``)."""
        self.proxy.add_done_callback(fn)

    def __await__(self):
        return self.proxy.__await__()


class TaskOutput(_TaskReference):
    """Reference to one output of a task.

    Parameters
    ----------
    key : int or str
        Tuple index, or dict key, of the output.
    proxy : TaskProxy
        The task.
    """

    __slots__ = ('key', 'proxy')

    def __init__(self, key, proxy):
        self.key = key
        self.proxy = proxy

    @property
    def selector(self):
        """The selector sent with fetches (the key)."""
        return self.key

    async def result(self):
        """Fetch this output's value.

        Returns
        -------
        object
            ``result[key]`` for tuple and dict results; the whole value for index 0 of a
            non-tuple result.

        Raises
        ------
        IndexError, KeyError
            If the result has no such output.
        Exception
            The remote exception if the task failed.
        """
        return await client_of(self.proxy._st).fetch(self.proxy._st, self.key)

    async def size(self, pending=False):
        """Size in bytes of this output, as it would travel (see ``TaskProxy.size``).

        Parameters
        ----------
        pending : bool
            If true, 0 when this output has already been fetched to this rank.

        Returns
        -------
        int

        Raises
        ------
        IndexError, KeyError
            If the result has no such output.
        Exception
            The remote exception if the task failed.
        """
        return await client_of(self.proxy._st).result_size(self.proxy._st, self.key, pending)

    def __repr__(self):
        return f'<TaskOutput [{self.key!r}] of {self.proxy!r}>'


class TaskDone(_TaskReference):
    """Reference to a task's completion: as an argument it makes a call wait, then it is removed.

    Parameters
    ----------
    proxy : TaskProxy
        The task.
    """

    __slots__ = ('proxy',)

    def __init__(self, proxy):
        self.proxy = proxy

    selector = Select.DONE

    async def result(self):
        """Wait for the task to finish.

        Returns
        -------
        bool
            ``True``.

        Raises
        ------
        Exception
            The remote exception if the task failed.
        """
        await self.proxy
        return True

    async def size(self, pending=False):
        """0: a completion carries no value.

        Parameters
        ----------
        pending : bool
            Ignored (Mosaic's signature).

        Returns
        -------
        int
            0.
        """
        return 0

    def __repr__(self):
        return f'<TaskDone of {self.proxy!r}>'


class TaskRemote:
    """``t.remote.<name>(*args, **kwargs)``: call a method of a task's result where it lives.

    The call runs on the worker that stores the result, against the stored value (it does not
    move), and returns a new task proxy; ``await t.remote.sum().result()`` fetches only the sum.
    Stride runs a loss's adjoint next to its data this way.

    Parameters
    ----------
    proxy : TaskProxy
        The task whose result is used.
    """

    __slots__ = ('_proxy',)

    def __init__(self, proxy):
        self._proxy = proxy

    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        proxy = self._proxy

        def call(*args, **kwargs):
            return client_of(proxy._st).submit_on_result(proxy, name, args, kwargs)
        call.__name__ = name
        return call

    def __repr__(self):
        return f'<TaskRemote of {self._proxy!r}>'
