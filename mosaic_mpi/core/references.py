"""References to a task's outputs and completion, usable as arguments of other calls.

``t.outputs`` is a :class:`TaskOutputGenerator`; ``t.outputs[i]`` a :class:`TaskOutput`;
``t.done`` / ``t.outputs.done`` a :class:`TaskDone`. None of them moves data or sends anything by
itself. Re-exported by :mod:`mosaic_mpi.core.task`.
"""

from .. import context
from ..messages import Select

__all__ = ['TaskOutputGenerator', 'TaskOutput', 'TaskDone', 'client_of']


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


class TaskOutput:
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

    def __await__(self):
        return self.result().__await__()

    def size(self, pending=False):
        """Bytes of the task's serialised arguments (see :meth:`TaskProxy.size`)."""
        return self.proxy.size(pending)

    def __repr__(self):
        return f'<TaskOutput [{self.key!r}] of {self.proxy!r}>'


class TaskDone:
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
        None

        Raises
        ------
        Exception
            The remote exception if the task failed.
        """
        await self.proxy.wait()

    def __await__(self):
        return self.result().__await__()

    def size(self, pending=False):
        """Bytes of the task's serialised arguments (see :meth:`TaskProxy.size`)."""
        return self.proxy.size(pending)

    def __repr__(self):
        return f'<TaskDone of {self.proxy!r}>'
