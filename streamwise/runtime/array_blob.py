"""Named numpy arrays and a JSON head as one byte string, and back (``OnnxStream`` snapshots).

Layout: ``b"SWA1"``, the head's length (uint32, little-endian), the head as JSON (with an
``arrays`` list of ``[name, dtype, shape]``), then each array's bytes in C order, in that list's
order.  numpy's ``savez`` does the same job through a zip archive, ten times slower for the
few small arrays of a stream's state, which a server writes every tick.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

MAGIC = b"SWA1"
_LEN = struct.Struct("<I")


def pack(head: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """``head`` (JSON-able) and ``arrays`` as bytes."""
    body = [np.ascontiguousarray(a) for a in arrays.values()]
    meta = [[n, a.dtype.str, list(a.shape)] for n, a in zip(arrays, body)]
    text = json.dumps({**head, "arrays": meta}).encode()
    return b"".join([MAGIC, _LEN.pack(len(text)), text, *(a.tobytes() for a in body)])


def unpack(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The head and arrays of ``pack``'s bytes; ValueError for anything else."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or bytes(blob[:4]) != MAGIC:
        raise ValueError("not a streamwise array blob (bad magic)")
    (n,) = _LEN.unpack_from(blob, 4)
    head = json.loads(bytes(blob[8 : 8 + n]).decode())
    at, arrays = 8 + n, {}
    for name, dtype, shape in head.pop("arrays"):
        dt = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if at + size > len(blob):
            raise ValueError(f"array {name!r} runs past the end of the blob")
        arrays[name] = np.frombuffer(blob, dt, int(np.prod(shape, dtype=np.int64)),
                                     at).reshape(shape).copy()
        at += size
    if at != len(blob):
        raise ValueError(f"{len(blob) - at} bytes left over after the arrays")
    return head, arrays
