"""Collective tessera arrays on the caller's side (SPEC S29): placement, proxies, the rules.

``Cls.remote(len=N, collective=True)`` places the N members on N distinct workers and gives them a
communicator of their own (``mosaic.comm()`` inside their methods); the worker's side, and why
the calls of every collective array run in one global order, is
:mod:`mosaic_mpi.runtime.collective`.

The rules that keep a collective from waiting forever, enforced where the user breaks them:

- a method is called on the whole array (``arr.f(x)``): every member runs it. Calling it on one
  member (``arr[i].f(x)``, ``arr.f(x, runtime=worker)``) raises :class:`CollectiveError` at once,
  unless the method is marked ``@mosaic.local`` (and then ``mosaic.comm()`` raises inside it);
- only the head makes collective arrays and calls them (it alone can order them);
- methods are plain functions (``def``): they run on the worker's collective thread.

Attribute reads and writes (``await arr[i].x``, ``arr.set_attr``) may address one member: they
run no method code that could call a collective.
"""

import asyncio
import functools
import inspect

from .. import context
from ..errors import CollectiveError, RuntimeDisconnectedError
from ..messages import JoinGroup, Op
from .references import bound_client
from .tessera import ArrayProxy, TaskArray, TesseraProxy, _defines, _is_method

__all__ = ['local', 'is_local', 'LOCAL_FLAG', 'MemberProxy', 'CollectiveArray',
           'CollectiveTaskArray', 'create_array']

LOCAL_FLAG = '__mosaic_local__'


def local(method):
    """Mark a method of a collective array's class as callable on one member alone.

    ``arr[i].method(...)`` then runs it on member ``i`` only; inside it ``mosaic.comm()`` raises
    :class:`CollectiveError` (the other members are not there to take part in a collective).

    Parameters
    ----------
    method : callable
        The method (a plain function).

    Returns
    -------
    callable
        The same function, marked.

    Raises
    ------
    TypeError
        If ``method`` is not callable.
    """
    if not callable(method):
        raise TypeError(f'@mosaic.local applies to methods, not to {type(method).__name__}')
    setattr(method, LOCAL_FLAG, True)
    return method


def is_local(cls, name):
    """bool: whether method ``name`` of ``cls`` is marked ``@mosaic.local``."""
    cls = getattr(cls, '__wrapped__', cls)
    return bool(getattr(inspect.getattr_static(cls, name, None), LOCAL_FLAG, False))


def _require_head(what):
    runtime = context.require()
    if runtime.rank != 0:
        raise CollectiveError(f'{what}: collective arrays are made and called by the head only '
                              f'(it orders their calls; calls from worker:{runtime.rank} could '
                              f'reach the members in different orders)')
    return runtime


def create_array(cls, count, where, args, kwargs):
    """Build a collective array of ``count`` members of ``cls`` on distinct workers.

    Parameters
    ----------
    cls : TesseraClass
        The ``@tessera`` class.
    count : int
        Number of members (at most the number of workers).
    where : None
        ``runtime=`` is not accepted (members go on distinct workers).
    args, kwargs
        Constructor arguments (the same for every member).

    Returns
    -------
    CollectiveArray

    Raises
    ------
    ValueError
        If ``count`` exceeds the number of workers, ``runtime=`` is given, or the class retries
        failing calls (a retry on one member would repeat its collectives alone).
    RuntimeDisconnectedError
        If ``count`` exceeds the number of workers not lost (``worker_lost='continue'``).
    CollectiveError
        If called on a worker.
    """
    name = cls.__name__
    runtime = _require_head(f'{name}.remote(collective=True)')
    client = runtime.client
    workers = client.placement.workers
    if where is not None:
        raise ValueError(f'{name}.remote(collective=True) places its members on distinct workers '
                         f'itself: runtime= cannot be given')
    if count > len(workers):
        raise ValueError(f'{name}.remote(len={count}, collective=True) needs {count} distinct '
                         f'workers, but the runtime has {len(workers)}: give len <= '
                         f'{len(workers)} or start more ranks')
    live = client.placement.live
    if count > len(live):
        # A member on a lost worker would leave the others in MPI_Comm_create_group for ever.
        lost = ', '.join(f'worker:{r}' for r in sorted(client.lost))
        raise RuntimeDisconnectedError(
            f'{name}.remote(len={count}, collective=True) needs {count} distinct workers, but '
            f'only {len(live)} are left ({lost} lost): give len <= {len(live)}')
    if getattr(cls, 'max_retries', 0):
        raise ValueError(f'{name} has @tessera(max_retries={cls.max_retries}): a collective '
                         f'array cannot retry calls (a member retrying alone would wait for the '
                         f'others in its collectives)')
    ranks = tuple(client.placement.member_ranks(count))
    transport = runtime.transport
    members = []
    for index, rank in enumerate(ranks):
        # The JoinGroup goes just before the CreateTessera, once the arguments are pickled: sent
        # for a member whose arguments failed, it would make the next tessera built on that
        # worker a member, waiting in MPI_Comm_create_group for ever.
        join = functools.partial(transport.send, rank, JoinGroup(ranks, index))
        tessera_id, init = client.submit_create(cls, name, args, dict(kwargs), rank,
                                                before_send=join)
        members.append(MemberProxy(cls, name, tessera_id, rank, init))
    client.collective_call([m._init._st for m in members])     # (see Client.drain)
    return CollectiveArray(members, uid=f'array-{name.lower()}-{client.new_id()}')


class MemberProxy(TesseraProxy):
    """A member of a collective array: its methods are called on the whole array.

    Calling a method on it alone raises :class:`CollectiveError`, unless the method is
    ``@mosaic.local``; attributes are read and written as on any tessera.
    """

    __slots__ = ()

    def _submit(self, op, name, args, kwargs):
        if op is Op.CALL and not is_local(self._cls, name):
            raise CollectiveError(
                f'{self._name}.{name} was called on one member of a collective array alone; '
                f'collective methods run on every member: call it on the array (arr.{name}(...)),'
                f' or mark it @mosaic.local if it calls no collective')
        return self._submit_member(op, name, args, kwargs)

    def _submit_member(self, op, name, args, kwargs):
        _require_head(f'{self._name}.{name}')
        if kwargs and 'max_retries' in kwargs:
            raise ValueError(f'{self._name}.{name}: max_retries= cannot be given to a call on a '
                             f'collective array (a member retrying alone would wait for the '
                             f'others in its collectives)')
        return TesseraProxy._submit(self, op, name, args, kwargs)

    def __reduce__(self):
        # Counted as any tessera proxy: a reference in flight until its receiver registers.
        client = self._owned or context.require().client
        lender = client.escape_tessera(self._tid, self._rank)
        return _rebuild_member_proxy, (self._cls, self._name, self._tid, self._rank, lender)

    def __repr__(self):
        return f'<MemberProxy {self._name}({self._tid}) on worker:{self._rank}>'


def _rebuild_member_proxy(cls, name, tessera_id, rank, lender=-1):
    proxy = MemberProxy(cls, name, tessera_id, rank, None)
    client = bound_client()
    if client is not None and client.adopt_tessera(tessera_id, rank, lender):
        object.__setattr__(proxy, '_owned', client)
    return proxy


class CollectiveTaskArray(TaskArray):
    """The member tasks of a call on a :class:`CollectiveArray`.

    ``await`` raises as soon as one member fails, without waiting for the others: they may be
    blocked in a collective that the failed member never reached.
    """

    async def _wait(self):
        await _all_or_first_failure(self)
        return self

    async def result(self):
        """list: the members' return values (raises the first failure, as ``await`` does)."""
        await self._wait()
        return [await proxy.result() for proxy in self]


async def _await(proxy):
    await proxy


async def _all_or_first_failure(awaitables):
    """Wait for every awaitable; raise the first failure (in order) as soon as there is one."""
    waits = [asyncio.ensure_future(_await(a)) for a in awaitables]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_EXCEPTION)
        for future in waits:
            if future in done and future.exception() is not None:
                raise future.exception()
    finally:
        for future in waits:
            future.cancel()


class CollectiveArray(ArrayProxy):
    """An array of tesserae on distinct workers with a communicator of their own (S29).

    ``arr.method(...)`` runs the method on every member and returns a
    :class:`CollectiveTaskArray`; inside it ``mosaic.comm()`` is the array's communicator, the
    member's rank in it its index. Calls of every collective array run on their members in the
    order the head made them. ``arr[i]`` is member ``i`` (a :class:`MemberProxy`).

    A method call raises :class:`~mosaic_mpi.errors.RuntimeDisconnectedError` at once, sending
    nothing, if the worker of a member was lost (``worker_lost='continue'``).
    """

    type = 'array_proxy'

    async def _wait(self):
        # A member whose constructor failed raises at once: the others may be waiting for it.
        await _all_or_first_failure(self._proxies)
        return self

    @property
    def collective(self):
        """bool: ``True`` (the members share a communicator)."""
        return True

    @property
    def ranks(self):
        """list of int: the members' worker ranks, in member order (distinct)."""
        return [p._rank for p in self._proxies]

    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        if _is_method(self._proxies[0]._cls, name):
            return _CollectiveMethod(self, name)
        return super().__getattr__(name)

    def __call__(self, *args, **kwargs):
        """Call ``__call__`` on every member."""
        if not _defines(self._proxies[0]._cls, '__call__'):
            raise TypeError(f'{self._proxies[0]._name} objects are not callable')
        return _CollectiveMethod(self, '__call__')(*args, **kwargs)

    def __repr__(self):
        return f'<CollectiveArray of {len(self)} {self._proxies[0]._name} on ranks {self.ranks}>'


class _CollectiveMethod:
    __slots__ = ('_array', '_name')

    def __init__(self, array, name):
        self._array = array
        self._name = name

    def __call__(self, *args, **kwargs):
        where = kwargs.pop('runtime', None)
        if where is not None:
            return self._array.member_on(where)._submit(Op.CALL, self._name, args, kwargs)
        proxies = self._array._proxies
        cls = getattr(proxies[0]._cls, '__wrapped__', proxies[0]._cls)
        if inspect.iscoroutinefunction(inspect.getattr_static(cls, self._name, None)):
            raise TypeError(f'{proxies[0]._name}.{self._name} is a coroutine function: methods '
                            f'of a collective array must be plain functions (def, not async '
                            f'def), as they run on the worker\'s collective thread')
        client = _require_head(f'{proxies[0]._name}.{self._name}').client
        lost = [p._rank for p in proxies if p._rank in client.lost]
        if lost:
            # Checked before anything is sent: the members left would wait for the lost ones in
            # their collectives for ever.
            raise RuntimeDisconnectedError(
                f'{proxies[0]._name}.{self._name}: the collective array\'s members on '
                f'{", ".join(f"worker:{r}" for r in lost)} were lost, so the others cannot run '
                f'its collective methods (make a new array on the workers left)')
        tasks = CollectiveTaskArray(p._submit_member(Op.CALL, self._name, args, kwargs)
                                    for p in proxies)
        client.collective_call([t._st for t in tasks])      # (see Client.drain)
        return tasks
