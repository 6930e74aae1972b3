"""``LinearAbsorb(window, feature_map)``: what leaves the window lives on in linear attention.

Hybrid Forcing keeps exact softmax attention over a sliding window and folds every token that
leaves it into a linear-attention state ``S = sum phi(k) v^T``, ``z = sum phi(k)``, whose output
``phi(q) S / phi(q) z`` is added to the window's.  The offline model computes the same sum over all
tokens older than the window, so streaming is exact (up to summation order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import CachePolicy, PState, SinkWindow
from streamwise.attention.cache.entries import Entries
from streamwise.core.state import Spec, tensor

FEATURE_MAPS = ("elu", "relu")


def feature(x: Tensor, name: str) -> Tensor:
    """The positive feature map of linear attention."""
    return F.elu(x) + 1 if name == "elu" else F.relu(x)


class LinearAbsorb(SinkWindow, CachePolicy):
    """Softmax over the last ``window`` frames plus linear attention over everything older."""

    def __init__(self, window: int, feature_map: str = "elu", positions: str = "absolute") -> None:
        super().__init__(positions)
        self._sink_window(0, window)
        if feature_map not in FEATURE_MAPS:
            raise ValueError(f"unknown feature_map {feature_map!r}: expected one of {FEATURE_MAPS}")
        self.feature_map = feature_map

    def spec(self, heads: int, head_dim: int) -> Spec:
        # the linear-attention summary of everything older than the window
        return {"S": tensor("B", heads, head_dim, head_dim), "z": tensor("B", heads, head_dim)}

    def extra_output(self, q: Tensor, e: Entries, qi: Entries, ps: PState) -> Tensor:
        rep = q.shape[1] // e["k"].shape[1]
        fq = feature(q, self.feature_map)  # [B, H, Tq, D]
        fk = feature(e["k"], self.feature_map).repeat_interleave(rep, 1)
        v = e["v"].repeat_interleave(rep, 1)
        old = (e["pos"][:, None, :] <= qi["pos"][:, :, None] - self.window) & e["valid"][:, None]
        a = (fq @ fk.mT) * old[:, None].to(q.dtype)  # [B, H, Tq, N]: older entries still cached
        s_rep, z_rep = ps["S"].repeat_interleave(rep, 1), ps["z"].repeat_interleave(rep, 1)
        num = a @ v + fq @ s_rep
        den = a.sum(-1) + (fq * z_rep[:, :, None, :]).sum(-1)
        return torch.where(den[..., None] > 0, num / den.clamp_min(1e-30)[..., None], 0.0)

    def evict(self, cache: Entries, ps: PState, t: int) -> tuple[Entries, PState]:
        leaving = (cache["pos"] <= t - self.window) & cache["valid"]
        if bool(leaving.any()):
            fk = feature(cache["k"], self.feature_map) * leaving[:, None, :, None]
            ps = {"S": ps["S"] + fk.mT @ cache["v"], "z": ps["z"] + fk.sum(2)}
        return E.select(cache, ~leaving | cache["pin"]), ps

    def __repr__(self) -> str:
        return f"LinearAbsorb({self.window}, {self.feature_map!r}, positions={self.positions!r})"
