"""References to values kept in the warehouse: what ``await runtime.put(obj)`` returns.

A :class:`WarehouseObject` is inert: it holds the object's id (which names the rank that owns
the value) and binds to this rank's runtime only when it is read or dropped, so it can be pickled
to any rank and used there. Passed as a top-level argument of a call it arrives as its value;
nested in a container it arrives as itself.
"""

import re

from .. import context
from ..messages import id_rank
from .status import TaskStatus

__all__ = ['WarehouseObject']

_UID = re.compile(r'ware-(?P<type>[^-]*)-(?P<id>[0-9a-f]{32})')


def _objects():
    return context.require().objects


class WarehouseObject:
    """Reference to a value stored with ``runtime.put``.

    Parameters
    ----------
    object_id : int
        The id under which the value is stored (unique across ranks; it names the owner rank).
    type_name : str
        Lower-case name of the value's type, for the uid.
    published : bool
        Whether every rank holds a copy (``put(..., publish=True)``).

    Notes
    -----
    ``await ref``, ``await ref.value()``, ``await ref.result()`` and ``await runtime.get(ref)``
    all return the value; on a rank that holds it (its owner, or any rank once it is published)
    it is read with no message, as a copy of its own for each reader (a reader changing it in
    place changes nothing for the others).
    Elsewhere each read fetches it from the owner (its arrays zero-copy).
    """

    __slots__ = ('object_id', 'type_name', 'published')

    def __init__(self, object_id, type_name, published=False):
        self.object_id = object_id
        self.type_name = type_name
        self.published = published

    @classmethod
    def from_uid(cls, uid):
        """The reference a uid string names.

        Parameters
        ----------
        uid : str
            ``'ware-<type>-<32 hex digits>'``, as :attr:`uid` gives.

        Returns
        -------
        WarehouseObject

        Raises
        ------
        ValueError
            If ``uid`` is not of that form.
        """
        match = _UID.fullmatch(uid)
        if match is None:
            raise ValueError(f'{uid!r} is not a warehouse uid (ware-<type>-<32 hex digits>)')
        return cls(int(match['id'], 16), match['type'])

    # -- identity ----------------------------------------------------------------------------------

    @property
    def uid(self):
        """str: ``'ware-<lower-case type name>-<32 hex digits>'``, unique across ranks."""
        return f'ware-{self.type_name}-{self.object_id:032x}'

    @property
    def owner(self):
        """int: rank of the runtime's communicator that put the value."""
        return id_rank(self.object_id)

    @property
    def warehouse_id(self):
        """str: uid of the rank that owns the value (``'head'`` or ``'worker:<rank>'``)."""
        return 'head' if self.owner == 0 else f'worker:{self.owner}'

    @property
    def state(self):
        """TaskStatus: always ``DONE`` (the value exists as soon as the reference does)."""
        return TaskStatus.DONE

    @property
    def is_proxy(self):
        """bool: ``True``: a reference, not the value."""
        return True

    # -- reading and dropping ----------------------------------------------------------------------

    async def value(self):
        """The stored value.

        Returns
        -------
        object
            The value (the stored object itself where this rank holds it).

        Raises
        ------
        KeyError
            At once if the object was dropped (or is unknown to its owner).
        ValueError
            If the reference names a rank that is not in this runtime.
        SerialisationError
            If the value arrived but cannot be unpickled here.
        RuntimeNotRunning
            If no runtime runs on this rank.
        """
        return await _objects().get(self)

    async def result(self):
        """Same as :meth:`value` (Mosaic's name too)."""
        return await _objects().get(self)

    def __await__(self):
        return _objects().get(self).__await__()

    async def drop(self):
        """Remove the value from every rank; later reads anywhere raise ``KeyError``.

        Returns when every rank has forgotten it. Dropping twice is harmless.

        Returns
        -------
        None
        """
        await _objects().drop(self)

    # -- plumbing ----------------------------------------------------------------------------------

    def __reduce__(self):
        return WarehouseObject, (self.object_id, self.type_name, self.published)

    def __eq__(self, other):
        return isinstance(other, WarehouseObject) and other.object_id == self.object_id

    def __hash__(self):
        return hash(self.object_id)

    def __repr__(self):
        published = ' published' if self.published else ''
        return f'<WarehouseObject {self.uid} on {self.warehouse_id}{published}>'
