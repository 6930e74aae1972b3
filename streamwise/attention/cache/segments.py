"""``Segments``: named streams sharing one cache, each with its own sinks, window and positions.

StreamingVLM keeps vision frames on a short window and text on a long one in one cache; Group
Position Encoding (StreamingThinker, Think-as-You-See) numbers input and generated tokens as two
position groups, so the model can read new input while it writes.  Each entry records its segment
and its index within that segment; a segment's rule (``Window`` or ``Sinks``) runs on those
indices, so a burst of frames never pushes text out of the cache.
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamwise.attention.cache.base import POSITION_MODES, CachePolicy, PState
from streamwise.attention.cache.entries import Entries
from streamwise.attention.cache.sinks import Sinks
from streamwise.attention.cache.window import Window
from streamwise.core.state import Spec, tensor


class Segments(CachePolicy):
    """``Segments({'vision': Window(16), 'text': Sinks(4, 512)}, positions='group')``.

    ``positions``: 'group' (each segment counts from its ``offsets`` entry, default 0),
    'absolute' (arrival frame over all segments) or 'within_cache'.
    """

    def __init__(self, rules: dict[str, Window | Sinks], positions: str = "group",
                 offsets: dict[str, int] | None = None) -> None:
        if not rules:
            raise ValueError("Segments needs at least one named segment")
        for name, r in rules.items():
            if not isinstance(r, (Window, Sinks)):
                raise ValueError(f"segment {name!r}: expected Window(n) or Sinks(n, w), got {r!r}")
        if positions not in POSITION_MODES:
            raise ValueError(f"unknown positions {positions!r}: expected one of {POSITION_MODES}")
        self.segments = tuple(rules)
        self.rules = list(rules.values())
        offsets = offsets or {}
        unknown = sorted(set(offsets) - set(rules))
        if unknown:
            raise ValueError(f"offsets for unknown segment {unknown[0]!r}: "
                             f"expected one of {list(rules)}")
        self.offsets = [int(offsets.get(n, 0)) for n in self.segments]
        self.positions = positions

    def spec(self, heads: int, head_dim: int) -> Spec:
        # frames seen per segment: one count shared by the rows (a batch is one conversation)
        return {"counts": tensor(len(self.segments), dtype=torch.long, batch_axis=None)}

    def admit(self, cache: Entries, new: Entries, ps: PState) -> tuple[Entries, PState]:
        cache, ps = super().admit(cache, new, ps)
        if not new["pos"].shape[1]:
            return cache, ps
        return cache, {**ps, "counts": new["counts"][0, -1]}  # after the block's last frame

    def allows(self, e: Entries, qi: Entries, ps: PState) -> Tensor:
        out = torch.zeros(e["pos"].shape[0], qi["pos"].shape[1], e["pos"].shape[1],
                          dtype=torch.bool, device=e["pos"].device)
        for s, rule in enumerate(self.rules):
            latest = qi["counts"][..., s] - 1  # the query's place in segment s, [B, Tq]
            ok = rule.rule(e["lidx"][:, None, :], latest[:, :, None])
            out |= (e["seg"] == s)[:, None, :] & ok
        return out

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor:
        keep = torch.zeros_like(cache["valid"])
        for s, rule in enumerate(self.rules):
            # a later query of another segment sees segment s as its last entry did
            latest = ps["counts"][s] - 1
            keep |= (cache["seg"] == s) & rule.rule(cache["lidx"], latest)
        return keep

    def present(self, e: Entries) -> Tensor:
        if self.positions != "group":
            return e["pos"]
        off = torch.tensor(self.offsets, device=e["seg"].device)
        return off[e["seg"]] + e["lidx"]

    @property
    def bound(self) -> int:
        return sum(r.bound + 1 for r in self.rules)

    @property
    def receptive_field(self) -> int:
        return max(r.receptive_field for r in self.rules)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {r!r}" for n, r in zip(self.segments, self.rules))
        return f"Segments({{{inner}}}, positions={self.positions!r})"
