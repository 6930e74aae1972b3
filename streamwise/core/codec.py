"""Fast, pickle-free bytes for state trees: a JSON skeleton plus the tensors' raw bytes.

Snapshots and server checkpoints are written every chunk, so this avoids ``torch.save``'s per-tensor
overhead (about 10x faster for a 70-leaf state) and never unpickles anything on load.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import torch
from torch import Tensor

_MAGIC = b"SWST"
_LEN = struct.Struct("<I")


def encode(tree: Any) -> bytes:
    """Bytes for a tree of dicts (str keys), lists, tuples, tensors, numbers, str, bool, None."""
    blobs: list[bytes] = []
    offset = 0

    def skel(v: Any) -> Any:
        nonlocal offset
        if isinstance(v, Tensor):
            t = v.detach().cpu().contiguous()
            raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
            blobs.append(raw)
            entry = {"__t": [str(t.dtype).removeprefix("torch."), list(t.shape), offset, len(raw)]}
            offset += len(raw)
            return entry
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError("state dict keys must be strings to be encoded")
            return {"__d": {k: skel(x) for k, x in v.items()}}
        if isinstance(v, tuple):
            return {"__tu": [skel(x) for x in v]}
        if isinstance(v, list):
            return [skel(x) for x in v]
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise TypeError(f"cannot encode a {type(v).__name__} in a state")

    head = json.dumps(skel(tree), separators=(",", ":")).encode()
    return _MAGIC + _LEN.pack(len(head)) + head + b"".join(blobs)


def decode(data: bytes) -> Any:
    """The tree ``encode`` wrote (tensors are fresh CPU copies)."""
    if data[:4] != _MAGIC:
        raise ValueError("not an encoded streamwise state (bad magic)")
    (n,) = _LEN.unpack_from(data, 4)
    body = memoryview(data)[8 + n:]
    skeleton = json.loads(bytes(data[8 : 8 + n]))

    def build(v: Any) -> Any:
        if isinstance(v, dict):
            if "__t" in v:
                dtype, shape, off, size = v["__t"]
                dt = getattr(torch, dtype)
                if not isinstance(dt, torch.dtype) or off + size > len(body):
                    raise ValueError("corrupt encoded state")
                if size == 0:
                    return torch.empty(shape, dtype=dt)
                raw = np.frombuffer(body[off : off + size], dtype=np.uint8).copy()
                return torch.from_numpy(raw).view(dt).reshape(shape)
            if "__tu" in v:
                return tuple(build(x) for x in v["__tu"])
            return {k: build(x) for k, x in v["__d"].items()}
        if isinstance(v, list):
            return [build(x) for x in v]
        return v

    return build(skeleton)
