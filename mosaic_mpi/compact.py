"""The compact wire form of the records on a round trip's path.

A call without dependencies and without out-of-band buffers, the fetch of its value, the value
that answers it and a completion without error are packed here with :mod:`struct` instead of
pickled as tuples (:func:`mosaic_mpi.messages.pack`): about twice as fast to pack (measured in
bench/README.md, *Round trip of one awaited call*), and a third fewer bytes for a call and its
fetch. A packet holding any other record (or one of these with dependencies, buffers, an error
or an output-key selector) keeps the pickled form; :func:`mosaic_mpi.messages.unpack` tells the
two apart by the first byte (a protocol-5 pickle starts with ``0x80``).

Layout (little-endian): the marker byte, then per record a one-byte type code (the codes of
:mod:`mosaic_mpi.messages`) and its fields:

=============  ===========================================================================
record         fields after the code
=============  ===========================================================================
``Call``       task id (int64), tessera id (int64), caller (int32), op (uint8), retries
               (int32), method length (uint16), payload length (uint32), method (UTF-8),
               payload pickle bytes
``Completed``  task id (int64)
``Fetch``      request id (int64), task id (int64), selector (uint8: index in ``Select``),
               requester (int32)
``Value``      request id (int64), ok (bool), payload length (uint32), payload pickle bytes
=============  ===========================================================================
"""

import struct

from . import messages as _messages
from .serialisation import Payload

__all__ = ['MARK', 'pack', 'unpack']

MARK = 0xFF
_HEAD = bytes((MARK,))
_CALL = struct.Struct('<BqqiBiHI')
_COMPLETED = struct.Struct('<Bq')
_FETCH = struct.Struct('<BqqBi')
_VALUE = struct.Struct('<Bq?I')
_new = tuple.__new__
_INT32 = 1 << 31


# Filled from mosaic_mpi.messages on first use (it imports this module at its end).
_Call = _Completed = _Fetch = _Value = _Select = _OPS = _OP_CODES = _SELECTS = _SELECT_CODES = None


def _load():
    global _Call, _Completed, _Fetch, _Value, _Select, _OPS, _OP_CODES, _SELECTS, _SELECT_CODES
    m = _messages
    _Completed, _Fetch, _Value, _Select = m.Completed, m.Fetch, m.Value, m.Select
    _OPS, _OP_CODES = tuple(m.Op), {op: int(op) for op in m.Op}
    _SELECTS, _SELECT_CODES = tuple(m.Select), {s: i for i, s in enumerate(m.Select)}
    _Call = m.Call          # last: it tells that the tables are filled


# Received method names, and payloads of at most _SMALL bytes (``None``, no arguments, small
# values), are made once and shared by the records that carry them: a Payload without buffers
# is never changed after it is made. Each table is emptied when it reaches _KEEP entries.
_NAMES = {}
_PAYLOADS = {}
_SMALL = 64
_KEEP = 1024


def _remember(table, key, value):
    if len(table) >= _KEEP:
        table.clear()
    table[key] = value
    return value


def _payload(data):
    payload = Payload(data)
    if len(data) <= _SMALL:
        _remember(_PAYLOADS, data, payload)
    return payload


def pack(records):
    """The compact body of one packet, or ``None`` if a record needs the pickled form.

    Parameters
    ----------
    records : list
        Records of :mod:`mosaic_mpi.messages`.

    Returns
    -------
    bytes or None
        The body (no out-of-band buffers), starting with :data:`MARK`.
    """
    if _Call is None:
        _load()
    parts = [_HEAD]
    append = parts.append
    for r in records:
        cls = r.__class__
        if cls is _Call:
            task_id, tessera_id, caller, op, method, payload, deps, retries = r
            if deps or payload.__class__ is not Payload or payload.buffers:
                return None
            code = _OP_CODES.get(op)
            name = method.encode()
            if code is None or len(name) > 0xFFFF or not -_INT32 <= retries < _INT32:
                return None
            data = payload.data
            append(_CALL.pack(1, task_id, tessera_id, caller, code, retries, len(name), len(data)))
            append(name)
            append(data)
        elif cls is _Value:
            payload = r.payload
            if payload.__class__ is not Payload or payload.buffers:
                return None
            data = payload.data
            append(_VALUE.pack(4, r.request_id, r.ok, len(data)))
            append(data)
        elif cls is _Fetch:
            if r.selector.__class__ is not _Select:     # an output key: pickled
                return None
            code = _SELECT_CODES[r.selector]
            append(_FETCH.pack(3, r.request_id, r.task_id, code, r.requester))
        elif cls is _Completed:
            if r.error is not None:
                return None
            append(_COMPLETED.pack(2, r.task_id))
        else:
            return None
    return b''.join(parts)


def unpack(body):
    """Inverse of :func:`pack`.

    Parameters
    ----------
    body : bytes-like
        A body that starts with :data:`MARK`.

    Returns
    -------
    list
        The records; payloads hold copies of their bytes (small ones shared, see ``_PAYLOADS``).

    Raises
    ------
    ValueError
        If the body is not a compact one (an unknown record code).
    """
    if _Call is None:
        _load()
    records = []
    append = records.append
    body = bytes(body)
    pos, end = 1, len(body)
    names, payloads = _NAMES, _PAYLOADS
    while pos < end:
        code = body[pos]
        if code == 1:
            _, task_id, tessera_id, caller, op, retries, size, length = _CALL.unpack_from(body, pos)
            pos += _CALL.size
            raw = body[pos:pos + size]
            method = names.get(raw)
            if method is None:
                method = _remember(names, raw, str(raw, 'utf-8'))
            pos += size
            data = body[pos:pos + length]
            payload = payloads.get(data)
            if payload is None:
                payload = _payload(data)
            append(_new(_Call, (task_id, tessera_id, caller, _OPS[op], method, payload, (),
                                retries)))
            pos += length
        elif code == 4:
            _, request_id, ok, length = _VALUE.unpack_from(body, pos)
            pos += _VALUE.size
            data = body[pos:pos + length]
            payload = payloads.get(data)
            if payload is None:
                payload = _payload(data)
            append(_new(_Value, (request_id, ok, payload)))
            pos += length
        elif code == 3:
            _, request_id, task_id, selector, requester = _FETCH.unpack_from(body, pos)
            pos += _FETCH.size
            append(_new(_Fetch, (request_id, task_id, _SELECTS[selector], requester)))
        elif code == 2:
            append(_new(_Completed, (_COMPLETED.unpack_from(body, pos)[1], None)))
            pos += _COMPLETED.size
        else:
            raise ValueError(f'not a compact packet: record code {code} at byte {pos}')
    return records
