"""The KV cache as a small pytree of per-entry tensors, and the few operations policies share.

Fields (``B`` rows, ``N`` entries, ``H`` KV heads, ``D`` head size), entries kept in arrival order:

- ``k``, ``v`` ``[B, H, N, D]``: keys *before* any position is applied, and values;
- ``pos`` ``[B, N]``: absolute frame at which the entry arrived (the position contract);
- ``seg`` / ``lidx`` ``[B, N]``: segment id and index within that segment (``Segments``);
- ``bias`` ``[B, N]``: added to the entry's logit (``log(count)`` for merged entries);
- ``pin`` ``[B, N]``: kept whatever the window (sinks);
- ``valid`` ``[B, N]``: False for padding, where rows kept different numbers of entries.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from streamwise.core.state import Leaf, tensor

Entries = dict[str, Tensor]

ROW_FIELDS = ("pos", "seg", "lidx", "bias", "pin", "valid")


def empty(batch: int, heads: int, head_dim: int, device: Any, dtype: torch.dtype) -> Entries:
    """A cache with no entries."""
    z = torch.zeros(batch, 0, device=device)
    return {
        "k": torch.zeros(batch, heads, 0, head_dim, device=device, dtype=dtype),
        "v": torch.zeros(batch, heads, 0, head_dim, device=device, dtype=dtype),
        "pos": z.long(), "seg": z.long(), "lidx": z.long(),
        "bias": z.to(dtype), "pin": z.bool(), "valid": z.bool(),
    }


def spec(heads: int, head_dim: int, bound: float) -> dict[str, Leaf]:
    """The declaration of a cache of at most ``bound`` entries (``core/state.py``)."""
    def row(dtype: torch.dtype | None) -> Leaf:
        return tensor("B", bound, dtype=dtype, grows=1)
    kv = tensor("B", heads, bound, head_dim, grows=2)
    return {"k": kv, "v": kv, "pos": row(torch.long), "seg": row(torch.long),
            "lidx": row(torch.long), "bias": row(None), "pin": row(torch.bool),
            "valid": row(torch.bool)}


def size(e: Entries) -> int:
    return int(e["pos"].shape[1])


def concat(a: Entries, b: Entries) -> Entries:
    """Entries of ``a`` then ``b`` (along the entry axis)."""
    out = {f: torch.cat([a[f], b[f]], 1) for f in ROW_FIELDS}
    out["k"] = torch.cat([a["k"], b["k"]], 2)
    out["v"] = torch.cat([a["v"], b["v"]], 2)
    return out


def select(e: Entries, keep: Tensor) -> Entries:
    """Keep the entries where ``keep [B, N]`` is True, in order; rows are padded to the longest.

    Padding entries are marked invalid.  When every row keeps the same entries (the usual case
    for position-based policies) this is a plain index, no padding.
    """
    keep = keep & e["valid"]
    if bool((keep == keep[:1]).all()):
        return take_shared(e, keep[0].nonzero().flatten())
    counts = keep.sum(1)
    n = int(counts.max())
    # stable compaction: kept entries first, in order, then padding
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :n]
    out = take(e, order)
    out["valid"] = torch.arange(n, device=keep.device)[None, :] < counts[:, None]
    return out


def keep_ends(e: Entries, first: int, last: int) -> Entries:
    """The first ``first`` and last ``last`` entries of every row (static slices; all of them
    where there are no more)."""
    n = size(e)
    if first + last >= n:
        return e

    def ends(t: Tensor, dim: int) -> Tensor:
        tail = t.narrow(dim, n - last, last)
        return torch.cat([t.narrow(dim, 0, first), tail], dim) if first else tail

    out = {f: ends(e[f], 1) for f in ROW_FIELDS}
    out["k"], out["v"] = ends(e["k"], 2), ends(e["v"], 2)
    return out


def take_shared(e: Entries, idx: Tensor) -> Entries:
    """Entries ``idx [M]`` of every row: views or a concatenation of a few contiguous runs (sinks
    plus a window are two), a plain index_select otherwise (memory copies beat gathers)."""
    m = idx.numel()
    cuts = ((idx[1:] - idx[:-1]) != 1).nonzero().flatten().tolist() if m > 1 else []
    if len(cuts) > 3:
        out = {f: e[f].index_select(1, idx) for f in ROW_FIELDS}
        out["k"], out["v"] = e["k"].index_select(2, idx), e["v"].index_select(2, idx)
        return out
    bounds = [0, *(c + 1 for c in cuts), m]
    runs = [(int(idx[a]), b - a) for a, b in zip(bounds, bounds[1:]) if b > a]

    def part(t: Tensor, dim: int) -> Tensor:
        pieces = [t.narrow(dim, lo, n) for lo, n in runs]
        if not pieces:
            return t.narrow(dim, 0, 0)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim)

    out = {f: part(e[f], 1) for f in ROW_FIELDS}
    out["k"], out["v"] = part(e["k"], 2), part(e["v"], 2)
    return out


def take(e: Entries, idx: Tensor) -> Entries:
    """Entries ``idx [B, M]`` of each row."""
    out = {f: torch.gather(e[f], 1, idx) for f in ROW_FIELDS}
    h, d = e["k"].shape[1], e["k"].shape[3]
    i4 = idx[:, None, :, None].expand(-1, h, -1, d)
    out["k"] = torch.gather(e["k"], 2, i4)
    out["v"] = torch.gather(e["v"], 2, i4)
    return out


def nbytes(e: Entries) -> int:
    return sum(t.numel() * t.element_size() for t in e.values())
