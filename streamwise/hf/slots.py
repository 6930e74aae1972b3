"""Within-cache positions (StreamingLLM) for every query of a multi-token chunk, exactly.

A query at absolute position ``p_i`` sees some cached entries; StreamingLLM shows each at its slot
among *those* entries, so entry ``e`` (slot ``r_i(e)``, the query's own slot ``o_i``) must sit at

    target_i(e) = p_i - (o_i - r_i(e)),   a rotation of  delta_i(e) = target_i(e) - pos(e)

beyond the one it got at arrival.  Inside a transformers layer a key has one rotation for all
queries.  The recent contiguous run has ``delta = 0`` for every query, but a sink's delta moves
with each query's window start.  So an entry gets one copy per distinct delta among the queries
that see it (a chunk of ``q`` tokens adds at most ``q - 1`` copies per sink), and the attention
mask shows query ``i`` only the copy at its own delta.  One token at a time, or with no gap
between sinks and window, no copy is made and the layout is the cache itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from streamwise.attention.cache.base import CachePolicy
from streamwise.attention.cache.entries import Entries


def slot_layout(policy: CachePolicy, cache: Entries, new: Entries, ps: dict[str, Any]
                ) -> tuple[Tensor, Tensor, Tensor]:
    """For ``cache`` (the entries after the chunk's ``new`` ones were admitted): which entry each
    returned key copies ``[K]``, its extra rotation ``[K]``, and the mask ``[B, q, K]``."""
    pos = cache["pos"]
    if pos.shape[0] > 1 and not bool((pos == pos[:1]).all()):
        raise ValueError("within-cache positions in transformers need every row of the batch to "
                         "keep the same entries (one stream per cache)")
    seen = policy.visible(cache, new, ps)[0]  # [q, N], the rows are the same
    rank = seen.long().cumsum(-1) - 1
    own = seen.sum(-1, keepdim=True) - 1  # the query's own entry is its last visible one
    delta = new["pos"][0][:, None] - (own - rank) - pos[0][None, :]  # [q, N]
    n, span = pos.shape[1], int(delta.abs().max()) + 1 if delta.numel() else 1
    qi, ei = seen.nonzero(as_tuple=True)
    unseen = (~seen.any(0)).nonzero().flatten()  # kept for later queries: one copy, not shown
    keys = torch.cat([ei * (2 * span + 1) + delta[qi, ei] + span, unseen * (2 * span + 1) + span])
    pairs, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    idx, shift = pairs // (2 * span + 1), pairs % (2 * span + 1) - span
    mask = torch.zeros(seen.shape[0], pairs.numel(), dtype=torch.bool, device=pos.device)
    mask[qi, inverse[: qi.numel()]] = True
    assert idx.numel() >= n
    return idx, shift, mask[None].expand(pos.shape[0], -1, -1)
