"""``Merge(threshold)``: near-duplicate keys share one entry (TempCache).

A new key whose cosine similarity to a cached key reaches ``threshold`` is folded into it: keys and
values are averaged (weighted by how many each already holds) and the entry's logit gets
``log(count)``.  Softmax over ``count`` identical keys equals one key with ``log(count)`` added and
the values averaged, so merging identical keys is exact when the attention layer uses
``encoding='none'`` (``StreamingAttention(..., encoding='none', cache=Merge(t))``; the policy's own
``positions`` is a position contract and refuses 'none').  With RoPE or ALiBi a key's logit
depends on its position, so duplicates at different positions cannot share one entry exactly
(the merged entry takes the newest member's position): the attention layer refuses the pair
unless ``approximate=True`` accepts the error (measured in the tests: over 1% relative error on
duplicated tokens under RoPE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import CachePolicy, PState, check_int
from streamwise.attention.cache.entries import Entries


class Merge(CachePolicy):
    """Merge keys with cosine similarity >= ``threshold``; optionally keep at most
    ``max_entries`` (the oldest by position go first)."""

    sequential = True
    exact = False

    def __init__(self, threshold: float, max_entries: int | None = None,
                 positions: str = "absolute", approximate: bool = False) -> None:
        super().__init__(positions)
        self.approximate = bool(approximate)
        if not -1.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        self.threshold = float(threshold)
        self.max_entries = None if max_entries is None else check_int("max_entries", max_entries, 1)

    def check_encoding(self, encoding: str) -> None:
        if encoding != "none" and not self.approximate:
            raise ValueError(
                f"Merge folds keys by content, but with encoding={encoding!r} a key's logit "
                f"depends on its position, so merged duplicates at different positions are not "
                f"exact; use encoding='none', or Merge(..., approximate=True) to accept the error")

    def admit(self, cache: Entries, new: Entries, ps: PState) -> tuple[Entries, PState]:
        if not E.size(cache):
            return E.concat(cache, new), ps
        b, h, n, d = cache["k"].shape
        kc = cache["k"].permute(0, 2, 1, 3).reshape(b, n, h * d)
        kn = new["k"].permute(0, 2, 1, 3).reshape(b, 1, h * d)
        sim = F.cosine_similarity(kc, kn, dim=-1).masked_fill(~cache["valid"], -2.0)
        best, idx = sim.max(1)
        rows = (best >= self.threshold).nonzero().flatten()
        if not rows.numel():
            return E.concat(cache, new), ps
        cache = {f: t.clone() for f, t in cache.items()}
        j = idx[rows]
        count = cache["bias"][rows, j].exp()[:, None, None]
        for f in ("k", "v"):
            old, add = cache[f][rows, :, j], new[f][rows, :, 0]
            cache[f][rows, :, j] = (old * count + add) / (count + 1)
        cache["bias"][rows, j] = torch.log(count.flatten() + 1).to(cache["bias"].dtype)
        for f in ("pos", "seg", "lidx"):
            cache[f][rows, j] = new[f][rows, 0]
        new = {**new, "valid": new["valid"].clone()}
        new["valid"][rows] = False  # the merged rows append padding instead
        return E.concat(cache, new), ps

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor:
        valid = cache["valid"]
        if self.max_entries is None or not E.size(cache):
            return valid
        m = min(self.max_entries, E.size(cache))
        pos = cache["pos"].masked_fill(~valid, -1)
        kth = pos.topk(m, dim=1).values[:, -1:]
        return valid & (pos >= kth)

    @property
    def bound(self) -> int | None:
        return self.max_entries

    def __repr__(self) -> str:
        return f"Merge({self.threshold}, max_entries={self.max_entries}, " \
               f"positions={self.positions!r}, approximate={self.approximate})"
