"""``SinkRefresh(n_sink, window, threshold)``: sinks replaced when the stream drifts from them.

StreamDiffusionV2 refreshes its sink tokens when the content moves on, because sinks from an old
scene anchor attention to the wrong statistics.  Drift is measured per row as the cosine similarity
between the mean sink key and the mean key in the window; below ``threshold`` the ``n_sink`` newest
entries become the sinks and the old ones leave.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import CachePolicy, PState, SinkWindow
from streamwise.attention.cache.entries import Entries
from streamwise.core.state import Spec, tensor


class SinkRefresh(SinkWindow, CachePolicy):
    """``Sinks(n_sink, window)`` whose sinks are renewed when similarity < ``threshold``."""

    sequential = True
    exact = False

    def __init__(self, n_sink: int, window: int, threshold: float = 0.5,
                 positions: str = "within_cache") -> None:
        super().__init__(positions)
        self._sink_window(n_sink, window, min_sink=1)
        if not -1.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        self.threshold = float(threshold)

    def spec(self, heads: int, head_dim: int) -> Spec:
        return {"refreshes": tensor("B", dtype=torch.long)}

    def admit(self, cache: Entries, new: Entries, ps: PState) -> tuple[Entries, PState]:
        missing = self.n_sink - (cache["pin"] & cache["valid"]).sum(1)  # [B]
        order = torch.arange(new["pos"].shape[1], device=missing.device)
        return E.concat(cache, {**new, "pin": order[None, :] < missing[:, None]}), ps

    def evict(self, cache: Entries, ps: PState, t: int) -> tuple[Entries, PState]:
        cache = E.select(cache, cache["pin"] | (cache["pos"] > t - self.window))
        sink, win = cache["pin"] & cache["valid"], ~cache["pin"] & cache["valid"]
        ready = (win.sum(1) >= self.n_sink) & (sink.sum(1) > 0)
        if not bool(ready.any()):
            return cache, ps
        k = cache["k"].permute(0, 2, 1, 3).flatten(2)  # [B, N, H*D]
        mean_s = (k * sink[..., None]).sum(1) / sink.sum(1, keepdim=True).clamp_min(1)
        mean_w = (k * win[..., None]).sum(1) / win.sum(1, keepdim=True).clamp_min(1)
        drift = ready & (F.cosine_similarity(mean_s, mean_w, dim=-1) < self.threshold)
        if not bool(drift.any()):
            return cache, ps
        newest = cache["pos"].masked_fill(~cache["valid"], -1)
        kth = newest.topk(self.n_sink, dim=1).values[:, -1:]
        pin = torch.where(drift[:, None], newest >= kth, cache["pin"])
        cache = {**cache, "pin": pin & cache["valid"]}
        cache = E.select(cache, cache["pin"] | (cache["pos"] > t - self.window))
        return cache, {"refreshes": ps["refreshes"] + drift.long()}

    def __repr__(self) -> str:
        return (f"SinkRefresh({self.n_sink}, {self.window}, threshold={self.threshold}, "
                f"positions={self.positions!r})")
