"""``AnnCrossAttention``: cross-attention where each query reads only the ``k`` memory entries an
approximate nearest-neighbour search finds (AnnCA).

Queries ``[B, Tq, C]`` attend over a memory ``[B, N, C]`` (an encoder's states, a long context).
The memory's keys are hashed once per call with ``AnnTopK``'s random hyperplanes; each query
looks at the keys within ``radius`` bits of its own code, keeps the ``k`` best ``q . k`` (summed
over heads) and takes the softmax over those alone.  ``radius=bits`` with ``k >= N`` is exact
cross-attention (a test); ``recall`` measures how much of the true top-``k`` the index finds.
No positions: the memory is a set.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from streamwise.attention.cache.ann import AnnTopK


class AnnCrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, k: int, bits: int = 8, radius: int = 1,
                 seed: int = 0) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"dim ({dim}) must be a positive multiple of heads ({heads})")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.index = AnnTopK(k, bits=bits, radius=radius, window=0, seed=seed)
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def _check(self, x: Tensor, name: str) -> None:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected {name} as [B, T, {self.dim}], got {tuple(x.shape)}")

    def selection(self, queries: Tensor, memory: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, Tq, N]`` masks: the entries each query attends to, and the true top-``k``."""
        self._check(queries, "queries")
        self._check(memory, "memory")
        if queries.shape[0] != memory.shape[0]:
            raise ValueError(f"queries and memory must share the batch, got "
                             f"{queries.shape[0]} and {memory.shape[0]}")
        q, kf = self.q_proj(queries), self.k_proj(memory)  # flat over heads: [B, T, C]
        r = self.index.planes(self.dim, kf)
        near = ((kf @ r > 0)[:, None] != (q @ r > 0)[:, :, None]).sum(-1) <= self.index.radius
        score = q @ kf.mT  # [B, Tq, N], summed over heads
        n = min(self.index.k, memory.shape[1])

        def top(among: Tensor) -> Tensor:
            idx = score.masked_fill(~among, float("-inf")).topk(n, dim=-1).indices
            return torch.zeros_like(among).scatter(-1, idx, True) & among

        return top(near), top(torch.ones_like(near))

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        chosen, _ = self.selection(queries, memory)
        b, tq, _ = queries.shape
        h, d = self.heads, self.head_dim
        q = self.q_proj(queries).view(b, tq, h, d).transpose(1, 2)
        k = self.k_proj(memory).view(b, -1, h, d).transpose(1, 2)
        v = self.v_proj(memory).view(b, -1, h, d).transpose(1, 2)
        s = (q @ k.mT / math.sqrt(d)).masked_fill(~chosen[:, None], float("-inf"))
        att = torch.softmax(s, -1).nan_to_num(0.0)  # a query with no candidate reads nothing
        return self.out_proj((att @ v).transpose(1, 2).reshape(b, tq, self.dim))

    def recall(self, queries: Tensor, memory: Tensor) -> Tensor:
        """``[B, Tq]``: the share of each query's true top-``k`` entries the index found."""
        chosen, truth = self.selection(queries, memory)
        return (chosen & truth).sum(-1) / truth.sum(-1).clamp_min(1)
