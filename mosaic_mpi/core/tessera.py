"""Tesserae: ``@tessera`` classes, their remote proxies and arrays of them.

``@tessera`` returns a :class:`TesseraClass` that wraps the user's class without changing it:
``Cls(...)`` still builds a plain local object, ``isinstance`` and subclassing work as before, and
nothing is injected into the class, so user methods may use any name. ``Cls.remote(...)`` builds
the object on a worker and returns a :class:`TesseraProxy` (or, with ``len=N``, an
:class:`ArrayProxy`).
"""

import asyncio
import collections.abc
import inspect
import sys

from .. import context
from ..messages import Op
from .references import bound_client
from .status import TaskStatus
from .task import TaskProxy
from .worker_task import current_task
from ..serialisation import main_by_value

__all__ = ['tessera', 'TesseraClass', 'TesseraProxy', 'ArrayProxy', 'TaskArray']


def tessera(cls=None, *, max_retries=0):
    """Make a class usable as a remote actor (tessera).

    Usable bare (``@tessera``) or with options (``@tessera(max_retries=2)``).

    Parameters
    ----------
    cls : type
        The class.
    max_retries : int
        How often a failing call (or the constructor) is run again, in place, on the same
        tessera, before its error is raised (S21); a call's ``max_retries=`` keyword overrides
        it.

    Returns
    -------
    TesseraClass
        Wrapper with ``remote()``; calling it builds a plain local instance.

    Raises
    ------
    TypeError
        If applied to something that is not a class.
    """
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ValueError(f'max_retries must be an int >= 0, got {max_retries!r}')

    def wrap(cls):
        if not isinstance(cls, type):
            raise TypeError(f'@tessera applies to classes, not to {type(cls).__name__}')
        return TesseraClass(cls, max_retries=max_retries)
    return wrap if cls is None else wrap(cls)


class TesseraClass:
    """A ``@tessera`` class: the user's class plus :meth:`remote`.

    Parameters
    ----------
    cls : type
        The user's class, unchanged (also ``__wrapped__``).
    max_retries : int
        Retry count (Mosaic option).
    """

    def __init__(self, cls, max_retries=0):
        self.__wrapped__ = cls
        self.max_retries = max_retries
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__

    def __call__(self, *args, **kwargs):
        return self.__wrapped__(*args, **kwargs)

    def __instancecheck__(self, obj):
        return isinstance(obj, self.__wrapped__)

    def __subclasscheck__(self, cls):
        return issubclass(cls, self.__wrapped__)

    def __mro_entries__(self, bases):
        return (self.__wrapped__,)

    def __getattr__(self, name):
        if name == '__wrapped__':
            raise AttributeError(name)
        return getattr(self.__wrapped__, name)

    def __repr__(self):
        return f'<tessera {self.__module__}.{self.__qualname__}>'

    def __reduce__(self):
        # By reference when the name resolves to this very object (every rank imports the
        # script, so workers find it too); by value otherwise (cloudpickle takes the class), and
        # for ``__main__`` when the workers do not run it (interactive, ``python -m mosaic_mpi``).
        module = sys.modules.get(self.__module__)
        obj = module
        for part in self.__qualname__.split('.'):
            obj = getattr(obj, part, None)
        if obj is self and not (module is sys.modules.get('__main__') and main_by_value()):
            return self.__qualname__
        return TesseraClass, (self.__wrapped__, self.max_retries)

    def remote(self, *args, **kwargs):
        """Build the object on a worker.

        Parameters
        ----------
        *args, **kwargs
            Constructor arguments (task proxies and outputs are waited for, as in calls).
        runtime : WorkerHandle, str or int, optional
            Keyword: the worker to place it on; round-robin over workers by default.
        len : int, optional
            Keyword: build an array of this many tesserae, member i on worker i mod W.
        collective : bool, optional
            Keyword, with ``len``: place the members on ``len`` distinct workers and give them a
            communicator of their own, ``mosaic.comm()`` inside their methods (S29; see
            :mod:`mosaic_mpi.core.collective`). Returns a ``CollectiveArray``.

        Returns
        -------
        TesseraProxy or ArrayProxy
            Returned at once; ``await`` it to wait for construction.

        Raises
        ------
        RuntimeNotRunning
            If no runtime is running on this rank.
        ValueError
            If ``runtime`` names no worker, or ``len`` is not a positive int; with
            ``collective=True``, if ``len`` exceeds the number of workers, ``runtime`` is given
            or the class has ``max_retries``.
        CollectiveError
            With ``collective=True``, on a worker (collective arrays are made by the head).
        SerialisationError
            If the class or an argument cannot be pickled (naming the argument).
        """
        where = kwargs.pop('runtime', None)
        count = kwargs.pop('len', None)
        collective = kwargs.pop('collective', False)
        client = context.require().client
        if collective:
            if count is None:
                raise ValueError(f'{self.__name__}.remote(collective=True) needs len=N, the '
                                 f'number of members')
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ValueError(f'len= must be a positive int, got {count!r}')
            from .collective import create_array
            return create_array(self, count, where, args, kwargs)
        if count is None:
            return self._create(client, client.placement.rank_of(where), args, kwargs)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f'len= must be a positive int, got {count!r}')
        if where is not None:
            ranks = [client.placement.rank_of(where)] * count
        else:
            ranks = client.placement.member_ranks(count)
        return ArrayProxy([self._create(client, rank, args, kwargs) for rank in ranks],
                          uid=f'array-{self.__name__.lower()}-{client.new_id()}')

    def _create(self, client, rank, args, kwargs):
        tessera_id, init = client.submit_create(self, self.__name__, args, dict(kwargs), rank)
        return _proxy_type(self)(self, self.__name__, tessera_id, rank, init)


_METHODS = {}       # (class, name) -> _is_method's answer (inspect.getattr_static costs ~2 us)


def _is_method(cls, name):
    if cls is None:
        return None
    key = (cls, name)
    known = _METHODS.get(key)
    if known is None:
        known = _METHODS[key] = _find_method(cls, name)
    return known


def _find_method(cls, name):
    cls = getattr(cls, '__wrapped__', cls)
    try:
        attr = inspect.getattr_static(cls, name)
    except AttributeError:
        return None
    if isinstance(attr, (staticmethod, classmethod)):
        return True
    if isinstance(attr, property) or not callable(attr):
        return False
    return True


def _defines(cls, name):
    """Whether the user's class (not ``object`` or a metaclass) defines ``name``."""
    cls = getattr(cls, '__wrapped__', cls)
    return isinstance(cls, type) and any(name in vars(k) for k in cls.__mro__ if k is not object)


class TesseraProxy:
    """Proxy of a tessera living on a worker.

    ``p.method(*args, **kwargs)`` submits a call and returns a :class:`TaskProxy` at once;
    ``await p.attr`` fetches a copy of a remote attribute; ``await p`` waits for construction.
    Proxies pickle as references: passed to another tessera, they can be called from there.
    """

    type = 'tessera_proxy'

    __slots__ = ('_cls', '_name', '_tid', '_rank', '_init', '_owned', '__weakref__')

    def __init__(self, cls, name, tessera_id, rank, init):
        self._cls = cls
        self._name = name
        self._tid = tessera_id
        self._rank = rank
        self._init = init
        # The client that counts this proxy (made here by remote(), or rebuilt by unpickling
        # and registered as a borrow): when it goes, that client hears of it.
        self._owned = init._st.client if init is not None else None

    def __del__(self):
        try:
            client = self._owned
            if client is not None:
                client.release_tessera(self._tid, self._rank, foreign=self._init is None)
        except Exception:       # interpreter shutdown: nothing left to free
            pass

    @property
    def uid(self):
        """int: the tessera's id."""
        return self._tid

    @property
    def runtime_id(self):
        """str: uid of the worker hosting it."""
        return f'worker:{self._rank}'

    @property
    def remote_runtime(self):
        """WorkerHandle: the worker hosting it."""
        return context.require().client.worker_handle(self._rank)

    @property
    def init_task(self):
        """TaskProxy or None: the construction task (``None`` for a proxy received by pickle)."""
        return self._init

    @property
    def state(self):
        """str: ``'pending'`` until built, then ``'listening'`` (``'failed'`` if the constructor
        raised), as Mosaic names them."""
        if self._init is None:
            return 'listening'
        status = self._init.state
        if status is TaskStatus.DONE:
            return 'listening'
        return 'failed' if status is TaskStatus.FAILED else 'pending'

    @property
    def init_future(self):
        """asyncio.Future: resolves to the construction's task proxy once the tessera is built
        (raises the constructor's exception if it failed)."""
        if self._init is None:
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future
        return self._init.done_future

    def __await__(self):
        return self._wait().__await__()

    async def _wait(self):
        if self._init is not None:
            await self._init
        return self

    def __call__(self, *args, **kwargs):
        """``p(*args)`` calls the remote object's ``__call__`` (Stride's operators rely on it).

        Raises
        ------
        TypeError
            If the class defines no ``__call__``.
        """
        if not _defines(self._cls, '__call__'):
            raise TypeError(f'{self._name} objects are not callable (the class defines no '
                            f'__call__)')
        return self._submit(Op.CALL, '__call__', args, kwargs)

    def __getitem__(self, name):
        """``p['name']`` is ``p.name`` (Mosaic's spelling)."""
        if not isinstance(name, str):
            raise TypeError(f'tessera proxies are indexed by attribute name, not '
                            f'{type(name).__name__}')
        return getattr(self, name)

    def _submit(self, op, name, args, kwargs):
        client = context.require().client
        retries = -1
        if kwargs and 'max_retries' in kwargs:      # reserved, as in Mosaic (S21)
            kwargs = dict(kwargs)
            retries = kwargs.pop('max_retries')
            if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
                raise ValueError(f'max_retries must be an int >= 0, got {retries!r}')
        return client.submit_call(self._tid, self._rank, self._name, op, name, args, kwargs,
                                  retries)

    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        if _is_method(self._cls, name):
            return _RemoteMethod(self, name)
        return _RemoteAttribute(self, name)

    def __setattr__(self, name, value):
        if name in TesseraProxy.__slots__:
            object.__setattr__(self, name, value)
            return
        raise AttributeError(f'cannot assign to an attribute of a remote {self._name}: use '
                             f'`await proxy.set_attr({name!r}, value)`')

    def get_attr(self, name):
        """Fetch a copy of the remote attribute ``name`` (ordered with this caller's calls).

        Returns
        -------
        coroutine
            Resolves to the value.

        Raises
        ------
        AttributeError
            When awaited, if the remote object has no such attribute.
        """
        return self._submit(Op.GETATTR, name, (), {}).result()

    def set_attr(self, name, value):
        """Set the remote attribute ``name`` (ordered with this caller's calls).

        Returns
        -------
        TaskProxy
            Await it to wait for the write.
        """
        return self._submit(Op.SETATTR, name, (value,), {})

    def __reduce__(self):
        # A reference in flight: counted until the receiving rank has registered it.
        client = self._owned or context.require().client
        lender = client.escape_tessera(self._tid, self._rank)
        return _rebuild_tessera_proxy, (self._cls, self._name, self._tid, self._rank, lender)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self             # a handle, not data

    @property
    def collectable(self):
        """bool: whether the tessera is destroyed once no proxy of it is left on any rank
        (``False`` for a proxy rebuilt where no runtime runs, or of another run)."""
        return self._owned is not None

    def __repr__(self):
        return f'<TesseraProxy {self._name}({self._tid}) on worker:{self._rank}>'


def _rebuild_tessera_proxy(cls, name, tessera_id, rank, lender=-1):
    proxy = _proxy_type(cls)(cls, name, tessera_id, rank, None)
    client = bound_client()
    if client is not None and client.adopt_tessera(tessera_id, rank, lender):
        object.__setattr__(proxy, '_owned', client)
    return proxy


_PROXY_TYPES = {}   # tessera class -> its proxy class


def _proxy_type(cls):
    """The proxy class of the tessera class ``cls``, made once per class.

    A subclass of :class:`TesseraProxy` with one plain method per method of the user's class
    (``p.step`` is then an ordinary attribute lookup and bound method, not a failed lookup that
    falls back to ``__getattr__``: about 1 us less per call). Names of the proxy's own API win,
    as they do with ``__getattr__``; anything else (attributes, methods added later) still goes
    through ``__getattr__``.
    """
    kind = _PROXY_TYPES.get(cls)
    if kind is not None:
        return kind
    user = getattr(cls, '__wrapped__', cls)
    namespace = {'__slots__': (), '__module__': __name__, '__doc__': TesseraProxy.__doc__}
    if isinstance(user, type):
        own = set(dir(TesseraProxy))
        for name in dir(user):
            if name in own or (name.startswith('__') and name.endswith('__')):
                continue
            if _is_method(cls, name):
                namespace[name] = _remote_method(name)
    kind = type('TesseraProxy', (TesseraProxy,), namespace)
    _PROXY_TYPES[cls] = kind
    return kind


def _remote_method(name):
    def call(self, *args, **kwargs):
        return self._submit(Op.CALL, name, args, kwargs)
    call.__name__ = call.__qualname__ = name
    return call


class _RemoteMethod:
    __slots__ = ('_proxy', '_name')

    def __init__(self, proxy, name):
        self._proxy = proxy
        self._name = name

    def __call__(self, *args, **kwargs):
        return self._proxy._submit(Op.CALL, self._name, args, kwargs)


class _RemoteAttribute:
    """``p.name`` for a name that is not a method of the class: awaitable, not callable."""

    __slots__ = ('_proxy', '_name')

    def __init__(self, proxy, name):
        self._proxy = proxy
        self._name = name

    def __await__(self):
        return self._proxy.get_attr(self._name).__await__()

    def __call__(self, *args, **kwargs):
        raise AttributeError(f'{self._proxy._name} has no method {self._name!r}')


class TaskArray(collections.abc.Sequence):
    """The member tasks of a call on an :class:`ArrayProxy`; ``await`` waits for all of them.

    A sequence of :class:`TaskProxy`, one per member in member order (indexing, slicing,
    iterating, ``len``, ``list(tasks)``, ``tasks + other``); awaiting it returns it, once every
    member has finished, and raises the first failure in member order (as awaiting the members
    one by one would).

    A call on the whole array keeps one shared record of its members on the caller
    (:class:`~mosaic_mpi.core.state.ArrayCall`); a member's :class:`TaskProxy` is made only
    when it is looked at, so that ``await arr.method()`` costs the caller far less than one
    call per member (see ``docs/scaling.md``).

    Parameters
    ----------
    proxies : iterable of TaskProxy
        The member tasks.
    """

    def __init__(self, proxies=()):
        self._items = list(proxies)
        self._group = None

    @classmethod
    def _of_call(cls, group):
        # The tasks of one array call (Client.submit_array_call), their proxies made on demand.
        tasks = cls.__new__(cls)
        tasks._items = [None] * len(group.task_ids)
        tasks._group = group
        return tasks

    def __len__(self):
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._items)))]
        proxy = self._items[index]
        if proxy is None:
            group = self._group
            proxy = group.client.member_proxy(group, range(len(self._items))[index],
                                              self._items)
        return proxy

    def __iter__(self):
        for index in range(len(self._items)):
            yield self[index]

    def __eq__(self, other):
        if isinstance(other, (TaskArray, list)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None

    def __add__(self, other):
        return list(self) + list(other)

    def __radd__(self, other):
        return list(other) + list(self)

    def __reduce__(self):
        return type(self), (list(self),)

    def __repr__(self):
        return f'{type(self).__name__}({list(self)!r})'

    def __del__(self):
        try:
            group = self._group
            if group is not None and group.client is not None:
                group.client.release_group(group)
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    def __await__(self):
        return self._wait().__await__()

    async def _wait(self):
        group = self._group
        if group is not None and current_task() is None:
            # On the head (no method awaiting): one wait for the whole call.
            await group.client.wait_group(group)
            if not group.failures:
                return self
        for proxy in self:              # the first failure in member order is raised
            await proxy
        return self

    async def result(self):
        """list: the members' return values."""
        await self._wait()
        return [await proxy.result() for proxy in self]


class ArrayProxy:
    """An array of tesserae of one class (``Cls.remote(..., len=N)``).

    ``arr[i]`` is member i (on worker i mod W); ``arr.method(...)`` calls every member and returns a
    :class:`TaskArray`; with ``runtime=worker`` only the member on that worker is called and its
    :class:`TaskProxy` returned (Stride's ``pde(..., runtime=worker)``); ``arr(...)`` calls
    ``__call__`` likewise; ``await arr.attr`` is the list of the members' values;
    ``await arr`` waits for construction.

    Parameters
    ----------
    proxies : list of TesseraProxy
        The members, in order.
    uid : str
        The array's id.
    """

    type = 'array_proxy'

    def __init__(self, proxies, uid=None):
        object.__setattr__(self, '_proxies', list(proxies))
        object.__setattr__(self, '_uid', uid)

    def __setattr__(self, name, value):
        raise AttributeError(f'cannot assign to an attribute of remote tesserae: use '
                             f'`await array.set_attr({name!r}, value)`')

    @property
    def uid(self):
        """str: the array's id, ``array-<class>-<first member's id>`` unless given."""
        if self._uid is not None:
            return self._uid
        first = self._proxies[0]
        return f'array-{first._name.lower()}-{first._tid}'

    @property
    def runtime_id(self):
        """list of str: uid of the worker hosting each member."""
        return [p.runtime_id for p in self._proxies]

    def __len__(self):
        return len(self._proxies)

    def __getitem__(self, index):
        return self._proxies[index]

    def __iter__(self):
        return iter(self._proxies)

    def __await__(self):
        return self._wait().__await__()

    async def _wait(self):
        for proxy in self._proxies:
            await proxy
        return self

    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        first = self._proxies[0]
        if _is_method(first._cls, name):
            return _ArrayMethod(self, name)
        return _ArrayAttribute(self, name)

    def __call__(self, *args, **kwargs):
        """Call ``__call__`` on every member (or, with ``runtime=``, on the one there)."""
        if not _defines(self._proxies[0]._cls, '__call__'):
            raise TypeError(f'{self._proxies[0]._name} objects are not callable')
        return _ArrayMethod(self, '__call__')(*args, **kwargs)

    def member_on(self, where):
        """The member living on a worker (the first one, if several do).

        Parameters
        ----------
        where : WorkerHandle, str or int
            A worker handle, uid (``'worker:2'``) or rank.

        Returns
        -------
        TesseraProxy

        Raises
        ------
        ValueError
            If ``where`` names no worker, or no member lives there.
        """
        rank = context.require().client.placement.rank_of(where)
        for proxy in self._proxies:
            if proxy._rank == rank:
                return proxy
        raise ValueError(f'no member of this array of {len(self)} {self._proxies[0]._name} lives '
                         f'on worker:{rank} (members are on '
                         f'{", ".join(sorted(set(self.runtime_id)))})')

    def get_attr(self, name):
        """Fetch the attribute ``name`` of every member.

        Returns
        -------
        coroutine
            Resolves to the list of the members' values, in member order.
        """
        return _ArrayAttribute(self, name)._values()

    async def set_attr(self, name, value):
        """Set the attribute ``name`` on every member and wait until all are set.

        Returns
        -------
        TaskArray
            The members' finished write tasks.
        """
        return await TaskArray(p.set_attr(name, value) for p in self._proxies)

    def __repr__(self):
        return f'<ArrayProxy of {len(self)} {self._proxies[0]._name}>'


class _ArrayMethod:
    __slots__ = ('_array', '_name')

    def __init__(self, array, name):
        self._array = array
        self._name = name

    def __call__(self, *args, **kwargs):
        where = kwargs.pop('runtime', None)
        if where is not None:
            return self._array.member_on(where)._submit(Op.CALL, self._name, args, kwargs)
        proxies = self._array._proxies
        if len(proxies) == 1:
            return TaskArray((proxies[0]._submit(Op.CALL, self._name, args, kwargs),))
        retries = -1
        if kwargs and 'max_retries' in kwargs:      # reserved, as in Mosaic (S21)
            retries = kwargs.pop('max_retries')
            if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
                raise ValueError(f'max_retries must be an int >= 0, got {retries!r}')
        # One pickle of the arguments and one record per worker for all the members (the
        # members still run as separate calls, ordered with the single calls made on them).
        client = context.require().client
        return TaskArray._of_call(client.submit_array_call(
            [(p._tid, p._rank) for p in proxies], proxies[0]._name, Op.CALL, self._name, args,
            kwargs, retries))


class _ArrayAttribute:
    __slots__ = ('_array', '_name')

    def __init__(self, array, name):
        self._array = array
        self._name = name

    def __await__(self):
        return self._values().__await__()

    async def _values(self):
        tasks = [p._submit(Op.GETATTR, self._name, (), {}) for p in self._array._proxies]
        return [await t.result() for t in tasks]

    def __call__(self, *args, **kwargs):
        raise AttributeError(f'{self._array[0]._name} has no method {self._name!r}')
