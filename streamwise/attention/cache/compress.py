"""``Compress``: what leaves a segment's window stays, pooled, as a bounded memory (the
Compressive Transformer's mean-pool compression; Flash-VStream's consolidated memory).

A pooled segment keeps its rule (``Sinks(n_sink, window)`` or ``Window(window)``) over its raw
entries, and pools the entries the window drops, ``rate`` at a time.  With ``j`` an entry's index
in its segment and ``L`` the index of the query's latest entry of that segment:

- entries ``n_sink + g*rate .. n_sink + (g+1)*rate - 1`` are group ``g``; the group is out of the
  window once its last member is (``j <= L - window``), so ``out(L) = max(0, (L - window - n_sink
  + 1) // rate)`` groups are out;
- group ``g`` is one memory entry: keys and values averaged, logit ``+ log(rate)``, shown at its
  middle member's position.  Softmax over ``rate`` equal keys equals one key with ``log(rate)``
  added and the values averaged, so pooling identical entries is exact; pooling different ones is
  the approximation (measured in the tests and the live bench);
- a query sees the last ``slots`` groups out of its window, ``out(L) - slots <= g < out(L)``, and
  not the members of the group still filling (at most ``rate - 1`` entries).

Everything follows positions, not content: every layer pools the same groups (one mask serves a
transformers model), and streaming equals the offline ``forward`` for every chunking.  The memory
covers ``window + rate * slots`` entries of the segment in ``window + slots`` cache entries.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import PState, check_int
from streamwise.attention.cache.entries import Entries
from streamwise.attention.cache.segments import Segments
from streamwise.attention.cache.sinks import Sinks
from streamwise.attention.cache.window import Window


class Compress(Segments):
    """``Compress({'input': Sinks(4, 480), 'output': Sinks(4, 256)}, pool={'input': (8, 32)})``:
    ``Segments`` where each segment named in ``pool`` keeps ``(rate, slots)``: what leaves its
    window is averaged ``rate`` entries at a time into at most ``slots`` memory entries."""

    def __init__(self, rules: dict[str, Window | Sinks], pool: dict[str, tuple[int, int]],
                 positions: str = "group", offsets: dict[str, int] | None = None) -> None:
        super().__init__(rules, positions, offsets)
        if positions == "within_cache":
            raise ValueError("Compress shows a pooled entry at its middle member's position, "
                             "not at a within_cache slot: "
                             "use positions='group' or 'absolute'")
        if not pool:
            raise ValueError("expected pool={segment: (rate, slots)} for at least one segment")
        unknown = sorted(set(pool) - set(rules))
        if unknown:
            raise ValueError(f"pool for unknown segment {unknown[0]!r}: expected one of "
                             f"{list(rules)}")
        self.real = len(self.segments)
        self.pools: list[tuple[int, int, int, Window | Sinks]] = []
        for name, setting in pool.items():
            if not (isinstance(setting, tuple) and len(setting) == 2):
                raise ValueError(f"pool[{name!r}]: expected (rate, slots), got {setting!r}")
            rate = check_int(f"pool[{name!r}] rate", setting[0], 1)
            slots = check_int(f"pool[{name!r}] slots", setting[1], 1)
            s = self.segments.index(name)
            self.pools.append((s, rate, slots, self.rules[s]))
        # memory entries live in a segment of their own (never fed), shown at the raw offsets
        self.memory_names = tuple(f"{name}:memory" for name in pool)
        self.segments = (*self.segments, *self.memory_names)
        self.offsets = [*self.offsets, *(self.offsets[s] for s, *_ in self.pools)]
        self.pool = dict(pool)

    # -- the indexing ----------------------------------------------------------------------------
    @staticmethod
    def _out(latest: Tensor, rate: int, rule: Window | Sinks) -> Tensor:
        """Groups wholly out of the window of a query whose latest segment index is ``latest``."""
        return torch.clamp((latest - rule.window - rule.n_sink + 1) // rate, min=0)

    @staticmethod
    def _group(lidx: Tensor, rate: int, rule: Window | Sinks) -> Tensor:
        """The group of a memory entry (its ``lidx`` is its middle member's)."""
        return (lidx - rule.n_sink - rate // 2) // rate

    def segment_ids(self, segment: str | list[str] | None, n: int, device: Any,
                    how: str = "pass segment=<name>") -> Tensor:
        names = [segment] if isinstance(segment, str) else list(segment or [])
        inner = sorted({s for s in names if s in self.memory_names})
        if inner:
            raise ValueError(f"segment {inner[0]!r} holds pooled memory and takes no frames: "
                             f"expected one of {list(self.segments[:self.real])}")
        if segment is None and self.real == 1:  # one fed segment: no name needed
            return torch.zeros(n, dtype=torch.long, device=device)
        return super().segment_ids(segment, n, device, how)

    # -- pooling ---------------------------------------------------------------------------------
    def _pooled(self, cache: Entries, before: Tensor, after: Tensor, kv: bool) -> Entries | None:
        """Memory entries of the groups that left the window between ``before`` and ``after``
        (segment counts), averaged from the raw members in ``cache`` (rows only: ``kv=False``)."""
        parts: list[Entries] = []
        for k, (s, rate, _, rule) in enumerate(self.pools):
            lo = int(self._out(before[s] - 1, rate, rule))
            hi = int(self._out(after[s] - 1, rate, rule))
            if hi <= lo:
                continue
            first, last = rule.n_sink + lo * rate, rule.n_sink + hi * rate
            row0 = (cache["seg"][0] == s) & (cache["lidx"][0] >= first) & (cache["lidx"][0] < last)
            idx = row0.nonzero().flatten()
            if idx.numel() != (hi - lo) * rate:
                raise RuntimeError(f"Compress: group members {first}..{last - 1} of segment "
                                   f"{self.segments[s]!r} are missing from the cache")
            b, g = cache["pos"].shape[0], hi - lo
            mid = idx.view(g, rate)[:, rate // 2]  # each group's middle member
            part: Entries = {
                "pos": cache["pos"][:, mid], "lidx": cache["lidx"][:, mid],
                "seg": torch.full_like(cache["seg"][:, mid], self.real + k),
                "bias": cache["bias"][:, idx].view(b, g, rate).mean(2) + math.log(rate),
                "pin": torch.zeros_like(cache["pin"][:, mid]),
                "valid": torch.ones_like(cache["valid"][:, mid]),
            }
            if kv:
                for f in ("k", "v"):
                    t = cache[f][:, :, idx]
                    part[f] = t.view(*t.shape[:2], g, rate, t.shape[-1]).mean(3)
            parts.append(part)
        if not parts:
            return None
        fields = [*E.ROW_FIELDS, *(("k", "v") if kv else ())]
        return {f: torch.cat([p[f] for p in parts], 2 if f in ("k", "v") else 1) for f in fields}

    def admit(self, cache: Entries, new: Entries, ps: PState) -> tuple[Entries, PState]:
        before = ps["counts"]
        cache, ps = super().admit(cache, new, ps)
        pooled = self._pooled(cache, before, ps["counts"], kv=True)
        return (cache if pooled is None else E.concat(cache, pooled)), ps

    def admit_rows(self, cache: Entries, new: Entries, ps: PState) -> Entries:
        rows = super().admit_rows(cache, new, ps)
        after = new["counts"][0, -1] if new["pos"].shape[1] else ps["counts"]
        pooled = self._pooled(rows, ps["counts"], after, kv=False)
        return rows if pooled is None else {f: torch.cat([rows[f], pooled[f]], 1)
                                            for f in E.ROW_FIELDS}

    def offline_entries(self, e: Entries, ps: PState) -> Entries:
        empty = {f: t[:, :0] if f not in ("k", "v") else t[:, :, :0] for f, t in e.items()}
        return self.admit(empty, e, ps)[0]

    # -- what is seen, what is kept --------------------------------------------------------------
    def allows(self, e: Entries, qi: Entries, ps: PState) -> Tensor:
        out = super().allows(e, qi, ps)
        for k, (s, rate, slots, rule) in enumerate(self.pools):
            done = self._out(qi["counts"][..., s] - 1, rate, rule)[:, :, None]  # [B, Tq, 1]
            g = self._group(e["lidx"], rate, rule)[:, None, :]
            out |= (e["seg"] == self.real + k)[:, None, :] & (g < done) & (g >= done - slots)
        return out

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor:
        keep = super().keep(cache, ps, t)
        for k, (s, rate, slots, rule) in enumerate(self.pools):
            done = self._out(ps["counts"][s] - 1, rate, rule)
            lidx = cache["lidx"]
            filling = (lidx >= rule.n_sink) & ((lidx - rule.n_sink) // rate >= done)
            keep |= (cache["seg"] == s) & filling  # members of groups not yet pooled
            memory = cache["seg"] == self.real + k
            keep |= memory & (self._group(lidx, rate, rule) >= done - slots)
        return keep

    @property
    def bound(self) -> int:
        return super().bound + sum(rate - 1 + slots for _, rate, slots, _ in self.pools)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {r!r}" for n, r in zip(self.segments, self.rules))
        return f"Compress({{{inner}}}, pool={self.pool!r}, positions={self.positions!r})"
