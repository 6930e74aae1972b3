"""``Retrieve(k)``: evicted pages go to a compressed store; the ``k`` most relevant come back.

LiveVLM and Flash-VStream keep what leaves the working cache in a compact memory and fetch back
what the current query needs.  Here the working cache is ``Sinks(n_sink, window)``; evicted entries
are grouped into pages of ``page`` frames, stored as int8 (symmetric, one scale per page and head,
about 4x smaller than float32) with the page's mean key as its summary.  Each query scores pages by
``q . summary`` (summed over heads) and attends over the cache plus its ``k`` best pages,
dequantised, at their original (absolute) positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import CachePolicy, PState, SinkWindow, check_int
from streamwise.attention.cache.entries import Entries
from streamwise.core.state import INF, Leaf, Spec, tensor


def quantize(x: Tensor) -> tuple[Tensor, Tensor]:
    """int8 codes and scales of ``x [B, H, n, D]``, one scale per (row, head)."""
    scale = x.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12) / 127
    return torch.round(x / scale).to(torch.int8), scale


class Retrieve(SinkWindow, CachePolicy):
    """Sinks + window in the cache, older pages in an int8 store, top-``k`` pages per query."""

    sequential = True
    exact = False

    def __init__(self, k: int, page: int = 16, window: int = 64, n_sink: int = 4,
                 max_pages: int | None = None) -> None:
        super().__init__("absolute")
        self.k = check_int("k", k, 1)
        self.page = check_int("page", page, 1)
        self._sink_window(n_sink, window)
        self.max_pages = None if max_pages is None else check_int("max_pages", max_pages, 1)
        self.grows = max_pages is None  # the page store has no limit

    def spec(self, heads: int, head_dim: int) -> Spec:
        """The int8 page store (``max_pages``, or unbounded), entries waiting to fill a page, and
        the pages fetched for the last query."""
        pages = self.max_pages or INF

        def store(*shape: int, dtype: torch.dtype | None = None) -> Leaf:
            return tensor("B", pages, *shape, dtype=dtype, grows=1)

        return {
            "pend": E.spec(heads, head_dim, self.page - 1),
            "qk": store(heads, self.page, head_dim, dtype=torch.int8),
            "qv": store(heads, self.page, head_dim, dtype=torch.int8),
            "sk": store(heads, 1, 1), "sv": store(heads, 1, 1),
            "ppos": store(self.page, dtype=torch.long),
            "summary": store(heads, head_dim),
            "last": tensor("B", self.k, dtype=torch.long, grows=1),
        }

    def visible(self, e: Entries, qi: Entries, ps: PState) -> Tensor:
        causal = e["pos"][:, None, :] <= qi["pos"][:, :, None]
        return causal & e["valid"][:, None, :]

    def attended(self, cache: Entries, q: Tensor, qi: Entries, ps: PState
                 ) -> tuple[Entries, PState]:
        extra = [ps["pend"]]
        pages = ps["summary"].shape[1]
        if pages:
            b, h = q.shape[0], ps["summary"].shape[2]
            qg = q.mean(2).view(b, h, -1, q.shape[-1]).mean(2)  # per KV head: [B, H_kv, D]
            score = torch.einsum("bhd,bphd->bp", qg, ps["summary"])
            top = score.topk(min(self.k, pages), dim=1).indices.sort(1).values  # [B, k]
            ps = {**ps, "last": top}
            extra.append(self._pages(ps, top))
        out = cache
        for e in extra:
            out = E.concat(out, e)
        order = out["pos"].masked_fill(~out["valid"], 2**62).argsort(dim=1, stable=True)
        return E.take(out, order), ps

    def _pages(self, ps: PState, top: Tensor) -> Entries:
        """Dequantised entries of pages ``top [B, k]``."""
        def pick(t: Tensor) -> Tensor:
            idx = top.view(*top.shape, *([1] * (t.dim() - 2))).expand(-1, -1, *t.shape[2:])
            return torch.gather(t, 1, idx)

        b, kk = top.shape
        k = pick(ps["qk"]).to(ps["sk"].dtype) * pick(ps["sk"])  # [B, k, H, page, D]
        v = pick(ps["qv"]).to(ps["sv"].dtype) * pick(ps["sv"])
        h, d = k.shape[2], k.shape[-1]
        flat = lambda t: t.permute(0, 2, 1, 3, 4).reshape(b, h, kk * self.page, d)  # noqa: E731
        pos = pick(ps["ppos"]).reshape(b, -1)
        n = pos.shape[1]
        return {"k": flat(k), "v": flat(v), "pos": pos, "seg": torch.zeros_like(pos),
                "lidx": pos.clone(), "bias": torch.zeros(b, n, dtype=k.dtype, device=k.device),
                "pin": torch.zeros(b, n, dtype=torch.bool, device=k.device),
                "valid": torch.ones(b, n, dtype=torch.bool, device=k.device)}

    def evict(self, cache: Entries, ps: PState, t: int) -> tuple[Entries, PState]:
        keep = self.rule(cache["pos"], torch.tensor(t)) & cache["valid"]
        if bool(keep.all()):
            return cache, ps
        pend = E.concat(ps["pend"], E.select(cache, ~keep))
        ps = dict(ps)
        while E.size(pend) >= self.page:
            dev = pend["pos"].device
            ps = self._store(ps, E.take_shared(pend, torch.arange(self.page, device=dev)))
            pend = E.take_shared(pend, torch.arange(self.page, E.size(pend), device=dev))
        ps["pend"] = pend
        return E.select(cache, keep), ps

    def _store(self, ps: PState, p: Entries) -> PState:
        qk, sk = quantize(p["k"])
        qv, sv = quantize(p["v"])
        add = {"qk": qk[:, None], "qv": qv[:, None], "sk": sk[:, None], "sv": sv[:, None],
               "ppos": p["pos"][:, None], "summary": p["k"].mean(2)[:, None]}
        out = {**ps, **{f: torch.cat([ps[f], a], 1) for f, a in add.items()}}
        if self.max_pages is not None and out["summary"].shape[1] > self.max_pages:
            out.update({f: out[f][:, 1:] for f in add})
        return out

    def __repr__(self) -> str:
        return (f"Retrieve(k={self.k}, page={self.page}, window={self.window}, "
                f"n_sink={self.n_sink}, max_pages={self.max_pages})")
