"""Pure serialisation: objects to an in-band pickle plus out-of-band buffers, and back.

Pickle protocol 5 (PEP 574) lets numpy arrays and other buffer exporters hand their memory to the
caller instead of copying it into the pickle. Every such buffer of at least ``threshold`` bytes is
kept out of band; the transport sends each as its own MPI message straight from the array's memory
and receives it into a fresh, writeable buffer that the unpickled array then wraps (no copy on
either side). Objects that plain pickle cannot handle (lambdas, closures, classes defined in
``__main__`` or a notebook) fall back to cloudpickle.

While a buffer is being sent, the array that exported it is made read-only: writing to it raises
``ValueError: assignment destination is read-only`` in the writer instead of corrupting the message
in flight. :meth:`Payload.release` (called by the transport when the send completes) makes it
writeable again. Only the exporting array (and views of exactly the same memory) are guarded; a
different view of a larger array is not.
"""

import io
import pickle
import threading

import cloudpickle
import numpy as np

from .errors import SerialisationError

__all__ = ['Payload', 'dumps', 'loads', 'ArrayLock', 'NO_ARGUMENTS', 'set_main_by_value',
           'main_by_value']

_PROTOCOL = 5
_MAIN = b'__main__'
_main_by_value = False


def set_main_by_value(flag):
    """Send what ``__main__`` defines by value (cloudpickle) instead of by reference.

    For runs whose workers do not run the head's ``__main__`` (a notebook, ``interactive('on')``,
    ``python -m mosaic_mpi``): there a class or function of ``__main__`` cannot be found by name.

    Parameters
    ----------
    flag : bool
    """
    global _main_by_value
    _main_by_value = bool(flag)


def main_by_value():
    """bool: whether objects of ``__main__`` travel by value (see :func:`set_main_by_value`)."""
    return _main_by_value


class ArrayLock:
    """Reference-counted read-only guard on arrays that are being sent.

    An array locked twice (sent twice at once) becomes writeable again only after both sends end.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._held = {}

    def acquire(self, array):
        """Make ``array`` read-only; return it if this call changed its flag, else ``None``."""
        with self._lock:
            entry = self._held.get(id(array))
            if entry is not None and entry[0] is array:
                entry[1] += 1
                return array
            if not array.flags.writeable:
                return None
            array.flags.writeable = False
            self._held[id(array)] = [array, 1]
            return array

    def release(self, array):
        """Undo one :meth:`acquire`; the last one makes the array writeable again."""
        with self._lock:
            entry = self._held.get(id(array))
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                del self._held[id(array)]
                try:
                    array.flags.writeable = True
                except ValueError:      # its base was made read-only meanwhile by its owner
                    pass


_ARRAY_LOCK = ArrayLock()


class Payload:
    """A serialised object: in-band pickle bytes plus out-of-band buffers.

    Parameters
    ----------
    data : bytes
        The pickle stream.
    buffers : list of buffer-like
        Out-of-band buffers, in the order the pickle refers to them. On the sending side these are
        :class:`pickle.PickleBuffer` objects wrapping the caller's memory; on the receiving side,
        writeable ``uint8`` arrays.
    locked : list of numpy.ndarray
        Arrays made read-only until :meth:`release`.
    """

    __slots__ = ('data', 'buffers', 'locked')

    def __init__(self, data, buffers=(), locked=()):
        # tuples, not lists: an empty tuple is a shared, untracked object (cheap for the GC)
        self.data = data
        self.buffers = tuple(buffers) if buffers else ()
        self.locked = tuple(locked) if locked else ()

    @property
    def nbytes(self):
        """int: total size in bytes, in band and out of band."""
        if not self.buffers:
            return len(self.data)
        return len(self.data) + sum(memoryview(b).nbytes for b in self.buffers)

    def share(self):
        """Another Payload of the same bytes, to send once more while this one is in flight.

        Its locked arrays are locked once more (:class:`ArrayLock` counts): they become writeable
        again when both have been released.

        Returns
        -------
        Payload
        """
        locked = [a for a in self.locked if _ARRAY_LOCK.acquire(a) is not None]
        return Payload(self.data, self.buffers, locked)

    def copy(self):
        """A Payload of copies of this one's buffers (arrays unpickled from it own them).

        Returns
        -------
        Payload
        """
        if not self.buffers:
            return self
        return Payload(self.data, [bytearray(b) for b in self.buffers])

    def release(self):
        """Make the arrays locked for sending writeable again (idempotent)."""
        locked, self.locked = self.locked, ()
        for array in reversed(locked):      # bases before the views made of them
            _ARRAY_LOCK.release(array)

    def __reduce__(self):
        # Pickled as part of something else (not by the transport, which sends the buffers as
        # their own messages): the buffers are copied in band.
        return Payload, (self.data, tuple(bytes(memoryview(b)) for b in self.buffers))


def _exporter_arrays(buffer):
    """Arrays whose memory is exactly ``buffer`` (the exporter and same-memory bases)."""
    arrays = []
    view = memoryview(buffer)
    obj, nbytes = view.obj, view.nbytes
    while isinstance(obj, np.ndarray) and obj.nbytes == nbytes:
        arrays.append(obj)
        obj = obj.base
    return arrays


def dumps(obj, threshold=65536, lock=True):
    """Serialise ``obj`` with out-of-band buffers.

    Parameters
    ----------
    obj : object
        Anything pickle or cloudpickle can serialise.
    threshold : int
        Minimum size in bytes of a buffer sent out of band; smaller buffers are copied in band.
    lock : bool
        Make exported arrays read-only until :meth:`Payload.release`.

    Returns
    -------
    Payload
        The pickle bytes and the out-of-band buffers.

    Raises
    ------
    SerialisationError
        If neither pickle nor cloudpickle can serialise ``obj``; the original error is chained.
    """
    if obj is None:
        return _NONE        # the value of most calls: one shared, immutable payload
    buffers = []

    def keep(buffer):
        if memoryview(buffer).nbytes < threshold:
            return True
        buffers.append(buffer)
        return False

    try:
        data = pickle.dumps(obj, protocol=_PROTOCOL, buffer_callback=keep)
        if _main_by_value and _MAIN in data:
            # A reference to ``__main__`` (or just those bytes in the data: then cloudpickle
            # costs a little time, nothing else): the workers' ``__main__`` is not this one.
            raise pickle.PicklingError('refers to __main__, which the workers do not share')
    except Exception as plain_error:
        buffers.clear()
        try:
            stream = io.BytesIO()
            cloudpickle.CloudPickler(stream, protocol=_PROTOCOL, buffer_callback=keep).dump(obj)
            data = stream.getvalue()
        except Exception as error:
            raise SerialisationError(
                f'cannot pickle {type(obj).__name__} object: {error} '
                f'(plain pickle said: {plain_error})') from error
    locked = []
    if lock:
        for buffer in buffers:
            for array in _exporter_arrays(buffer):
                if _ARRAY_LOCK.acquire(array) is not None:
                    locked.append(array)
    return Payload(data, buffers, locked)


def loads(payload):
    """Rebuild the object a :class:`Payload` holds.

    Parameters
    ----------
    payload : Payload
        As produced by :func:`dumps`, or as received by the transport.

    Returns
    -------
    object
        The object; arrays wrap the payload's buffers without copying.

    Raises
    ------
    Exception
        Whatever unpickling raises (for instance ``AttributeError`` or ``ModuleNotFoundError`` when a
        class cannot be found on this rank).
    """
    data = payload.data
    if not payload.buffers:
        if data == _NONE_DATA:
            return None
        if data == _NO_ARGUMENTS_DATA:
            return (), {}       # a fresh dict: workers fill keyword slots in place
    return _Unpickler(io.BytesIO(data), buffers=payload.buffers).load()


# The two commonest payloads, recognised without unpickling (~1 us each way).
_NONE_DATA = pickle.dumps(None, protocol=_PROTOCOL)
_NONE = Payload(_NONE_DATA)
_NO_ARGUMENTS_DATA = pickle.dumps(((), {}), protocol=_PROTOCOL)
NO_ARGUMENTS = Payload(_NO_ARGUMENTS_DATA)      # ``(args, kwargs)`` of every call without any


def _writeable_frombuffer(buffer, dtype, shape, order):
    # numpy rebuilds a protocol-5 array with frombuffer; an in-band buffer comes back read-only,
    # so those (small by construction) are copied: received arrays are always writeable.
    array = np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)
    if not array.flags.writeable:
        array = array.copy(order='K')
    return array


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == '_frombuffer' and module in ('numpy.core.numeric', 'numpy._core.numeric'):
            return _writeable_frombuffer
        return super().find_class(module, name)
