"""Binary WebSocket frames: a 24-byte header then the samples of one chunk, ``[C, T]`` row-major.

Header (little-endian): magic ``b"SW"``, version (u8), dtype code (u8), seq (i64), ack (i64, -1 for
none), channels (u32).  The frame count is implied by the payload length.  The same layout carries
outputs back (``ack`` then holds ``durable_seq``: the last chunk whose result is stored).
"""

from __future__ import annotations

import struct

import numpy as np
from torch import Tensor

from streamwise.serve.errors import ServeError

MAGIC, VERSION = b"SW", 1
HEADER = struct.Struct("<2sBBqqI")
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i2"), 4: np.dtype("<f2"),
}
CODES = {str(v): k for k, v in DTYPES.items()}


def encode(seq: int, data: Tensor | np.ndarray, ack: int = -1) -> bytes:
    """One frame for a ``[C, T]`` (or ``[1, C, T]``) chunk."""
    arr = data.detach().cpu().numpy() if isinstance(data, Tensor) else np.asarray(data)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"expected a [C, T] chunk, got shape {arr.shape}")
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    code = CODES.get(str(np.dtype(dt).newbyteorder("<")))
    if code is None:
        raise ValueError(f"dtype {arr.dtype} has no wire code; use float32")
    head = HEADER.pack(MAGIC, VERSION, code, seq, ack, arr.shape[0])
    return head + np.ascontiguousarray(arr, dtype=DTYPES[code]).tobytes()


def decode(frame: bytes) -> tuple[int, int, np.ndarray]:
    """``(seq, ack, array [C, T])`` of a frame; ``ServeError('bad_frame')`` says what is wrong."""
    if len(frame) < HEADER.size:
        raise ServeError("bad_frame", f"binary frame of {len(frame)} bytes is shorter than the "
                         f"{HEADER.size}-byte header (magic 'SW', version, dtype, seq, ack, "
                         "channels)")
    magic, version, code, seq, ack, channels = HEADER.unpack_from(frame)
    if magic != MAGIC or version != VERSION:
        raise ServeError("bad_frame", f"expected magic b'SW' and version {VERSION}, "
                         f"got {magic!r} version {version}")
    if code not in DTYPES:
        raise ServeError("bad_frame", f"unknown dtype code {code}; expected one of "
                         + ", ".join(f"{k}={v}" for k, v in DTYPES.items()))
    if channels < 1:
        raise ServeError("bad_frame", "channels must be >= 1")
    dt = DTYPES[code]
    body = len(frame) - HEADER.size
    if body % (dt.itemsize * channels):
        raise ServeError("bad_frame", f"payload of {body} bytes is not a whole number of "
                         f"{channels}-channel {dt} frames")
    arr = np.frombuffer(frame, dtype=dt, offset=HEADER.size).reshape(channels, -1)
    return seq, ack, arr
