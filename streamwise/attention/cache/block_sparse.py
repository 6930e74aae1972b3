"""``BlockSparse(block, blocks, top)``: block-sparse window attention (Hybrid Forcing).

Frames are grouped into blocks of ``block`` on the absolute clock.  A query attends to every
earlier frame of its own block and to the ``top`` past blocks, among the last ``blocks``, whose
mean key is most aligned with it (``q . mean k``, summed over heads); older blocks are evicted, so
the cache holds at most ``blocks`` blocks.  With ``top >= blocks - 1`` it is plain window
attention over whole blocks; smaller ``top`` reads ``(top + 1) * block`` keys per query whatever
the window.  Offline, the layer computes the full causal attention this approximates, so the
error is measured (tests), not promised.  ``LinearAbsorb`` folds evicted keys into a linear state
instead: the two are the halves of Hybrid Forcing's attention.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamwise.attention.cache.base import CachePolicy, PState, check_int
from streamwise.attention.cache.entries import Entries


class BlockSparse(CachePolicy):
    sequential = True  # each query chooses its own blocks
    exact = False

    def __init__(self, block: int, blocks: int, top: int) -> None:
        super().__init__("absolute")
        self.block_size = check_int("block", block, 1)
        self.blocks = check_int("blocks", blocks, 1)
        self.top = check_int("top", top, 0)

    def attended(self, cache: Entries, q: Tensor, qi: Entries, ps: PState
                 ) -> tuple[Entries, PState]:
        b, h, n, d = cache["k"].shape
        valid = cache["valid"]
        kb = cache["pos"] // self.block_size  # [B, N] block of each entry
        qb = qi["pos"][:, -1:] // self.block_size  # [B, 1] the query's block
        past = valid & (kb < qb) & (kb > qb - self.blocks)
        rel = (qb - 1 - kb).clamp(0, self.blocks - 1)  # 0: the block just before the query's
        qf = q[:, :, -1].reshape(b, h, -1, d).mean(2)  # [B, H, D] per KV head
        score = torch.einsum("bhd,bhnd->bn", qf, cache["k"])  # per entry
        sums = torch.zeros(b, self.blocks, dtype=score.dtype, device=score.device)
        counts = torch.zeros_like(sums)
        sums.scatter_add_(1, rel, score.masked_fill(~past, 0.0))
        counts.scatter_add_(1, rel, past.to(score.dtype))
        mean = (sums / counts.clamp_min(1)).masked_fill(counts == 0, float("-inf"))
        k = min(self.top, self.blocks)
        chosen = torch.zeros(b, self.blocks, dtype=torch.bool, device=valid.device)
        if k:
            best = mean.topk(k, dim=1)
            chosen.scatter_(1, best.indices, best.values > float("-inf"))
        keep = (valid & (kb == qb)) | (past & torch.gather(chosen, 1, rel))
        return {**cache, "valid": keep}, ps

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor | bool:
        first = (t // self.block_size - (self.blocks - 1)) * self.block_size
        return cache["pos"] >= first

    @property
    def bound(self) -> int:
        return self.blocks * self.block_size

    @property
    def receptive_field(self) -> int:
        return self.blocks * self.block_size

    def __repr__(self) -> str:
        return f"BlockSparse(block={self.block_size}, blocks={self.blocks}, top={self.top})"
