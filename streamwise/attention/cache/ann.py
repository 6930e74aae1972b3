"""``AnnTopK(k)``: each query attends to the ``k`` keys an approximate nearest-neighbour search
finds, plus a recent window (AnnSA's ANN-selected sparse attention).

The index is random-hyperplane LSH (SimHash): a key's code is ``sign(R k)`` over ``bits`` fixed
random planes (seeded), and a query looks at the keys whose codes differ from its own in at most
``radius`` bits; among those candidates the ``k`` best ``q . k`` (summed over heads) are attended,
together with the last ``window`` frames.  Everything stays cached (the cache grows like ``Full``),
so ``radius=bits`` with ``k`` at least the number of frames is full attention again (a test);
smaller settings trade recall of the true top-``k`` for work, and ``recall`` measures it.  Keys
are hashed before positions are applied: under RoPE the selection ignores rotation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamwise.attention.cache.base import CachePolicy, PState, check_int
from streamwise.attention.cache.entries import Entries


class AnnTopK(CachePolicy):
    sequential = True  # one query at a time: each has its own selection
    exact = False
    grows = True

    def __init__(self, k: int, bits: int = 8, radius: int = 1, window: int = 8,
                 seed: int = 0) -> None:
        super().__init__("absolute")
        self.k, self.bits = check_int("k", k, 1), check_int("bits", bits, 1)
        self.radius, self.window = check_int("radius", radius, 0), check_int("window", window, 0)
        self.seed = seed
        self._planes: dict[tuple[int, str, torch.dtype], Tensor] = {}

    def planes(self, width: int, like: Tensor) -> Tensor:
        """The ``[width, bits]`` hyperplanes (the same for every call with this seed)."""
        key = (width, str(like.device), like.dtype)
        if key not in self._planes:
            gen = torch.Generator().manual_seed(self.seed)
            self._planes[key] = torch.randn(width, self.bits, generator=gen,
                                            dtype=torch.float64).to(like)
        return self._planes[key]

    def _flat(self, cache: Entries, q: Tensor) -> tuple[Tensor, Tensor]:
        b, h, n, d = cache["k"].shape
        kf = cache["k"].permute(0, 2, 1, 3).reshape(b, n, h * d)
        qf = q[:, :, -1].reshape(b, h, -1, d).mean(2).reshape(b, h * d)  # query heads -> KV heads
        return kf, qf

    def candidates(self, cache: Entries, q: Tensor) -> Tensor:
        """``[B, N]``: the keys within ``radius`` bits of the query's code."""
        kf, qf = self._flat(cache, q)
        r = self.planes(kf.shape[-1], kf)
        ham = ((kf @ r > 0) != (qf @ r > 0)[:, None]).sum(-1)
        return (ham <= self.radius) & cache["valid"]

    def top(self, cache: Entries, q: Tensor, among: Tensor) -> Tensor:
        """``[B, N]``: the ``k`` best ``q . k`` among the entries marked in ``among``."""
        kf, qf = self._flat(cache, q)
        score = (kf * qf[:, None]).sum(-1).masked_fill(~among, float("-inf"))
        idx = score.topk(min(self.k, score.shape[1]), dim=1).indices
        return torch.zeros_like(among).scatter(1, idx, True) & among

    def attended(self, cache: Entries, q: Tensor, qi: Entries, ps: PState
                 ) -> tuple[Entries, PState]:
        chosen = self.top(cache, q, self.candidates(cache, q))
        recent = cache["pos"] > qi["pos"][:, -1:] - self.window
        return {**cache, "valid": cache["valid"] & (chosen | recent)}, ps

    def recall(self, cache: Entries, q: Tensor) -> Tensor:
        """``[B]``: the fraction of the true top-``k`` keys (exact search) the index finds."""
        truth = self.top(cache, q, cache["valid"])
        found = self.top(cache, q, self.candidates(cache, q))
        return (truth & found).sum(1) / truth.sum(1).clamp_min(1)

    def __repr__(self) -> str:
        return (f"AnnTopK(k={self.k}, bits={self.bits}, radius={self.radius}, "
                f"window={self.window}, seed={self.seed})")
