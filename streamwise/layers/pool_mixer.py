"""Causal pooling token mixer: PoNet's multi-granularity pooling in a streaming form.

PoNet mixes tokens with three poolings instead of attention: a global average, a max over the
token's segment, and a max over its neighbourhood.  Made causal, each one sees only the past:

- global: the running (prefix) mean of all frames so far;
- segment: the max over the current segment so far (segments of ``segment`` frames on the
  stream's absolute clock);
- local: the max over the last ``local`` frames.

They are fused as ``out(x * G(global) + S(segment) + L(local))`` with linear maps over channels,
and each one streams exactly with a few numbers of state per channel.

PoNet's global aggregation has a second stage: the pooled vector becomes a query that attends
over the tokens.  ``attend=W`` adds it, causal and bounded: with ``g_t`` the prefix mean,

    global_t = sum_{s in (t - W, t], s >= start} softmax_s(q_t . k_s / sqrt(C)) v_s,
    q_t = Q g_t,  k_s = K x_s,  v_s = V x_s,

one query per frame over the last ``W`` frames of its own row (a restarted row's old frames are
masked out), which takes ``W - 1`` frames of state.  ``attend=None`` keeps the prefix mean alone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamwise.core.state import Spec, clock, tensor
from streamwise.layers.pool import MaxPool1d
from streamwise.layers.recurrence import Recurrence


def prefix_mean(
    x: Tensor, total: Tensor | None = None, count: int | Tensor = 0
) -> tuple[Tensor, Tensor]:
    """Running mean of ``x [B, C, T]`` after ``count`` earlier frames summing to ``total``;
    ``count`` an int (every row) or a ``[B]`` tensor (each row's frames since its start, so a
    restarted row and an exported step, which cannot read a Python clock, divide right)."""
    sums = torch.cumsum(x, -1)
    if total is not None:
        sums = sums + total.unsqueeze(-1)
    if isinstance(count, Tensor):
        n = count.to(x.dtype)[:, None, None] + torch.arange(
            1, 1 + x.shape[-1], device=x.device, dtype=x.dtype)
        return sums / n, sums[..., -1]
    n = torch.arange(count + 1, count + 1 + x.shape[-1], device=x.device, dtype=x.dtype)
    return sums / n, sums[..., -1]


def prefix_max(x: Tensor) -> Tensor:
    """Running max over the last axis in log2(T) shifted maxima (exact, like ``cummax``, which
    ONNX has no function for)."""
    k = 1
    while k < x.shape[-1]:
        x = torch.maximum(x, F.pad(x[..., :-k], (k, 0), value=float("-inf")))
        k *= 2
    return x


def segment_max(x: Tensor, start: int, segment: int, running: Tensor | None) -> Tensor:
    """Max over each frame's segment so far; ``x`` starts at absolute frame ``start`` and
    ``running`` is the max of the current segment's earlier frames (None at a boundary)."""
    outs, pos, t = [], 0, x.shape[-1]
    while pos < t:
        frame = start + pos
        end = min(t, pos + segment - frame % segment)
        piece = prefix_max(x[..., pos:end])
        if running is not None and frame % segment:
            piece = torch.maximum(piece, running.unsqueeze(-1))
        outs.append(piece)
        running = piece[..., -1]
        pos = end
    return torch.cat(outs, -1) if outs else x


class CausalPoolingMixer(Recurrence):
    """Token mixing by causal global / segment / local pooling on ``[B, C, T]``."""

    in_ndim = 3

    def __init__(self, channels: int, segment: int = 16, local: int = 3,
                 attend: int | None = None) -> None:
        super().__init__()
        if attend is not None and (isinstance(attend, bool) or not isinstance(attend, int)
                                   or attend < 1):
            raise ValueError(f"attend must be None or a window of >= 1 frames, got {attend!r}")
        self.channels, self.segment, self.attend = channels, segment, attend
        self.fixed_in_channels = self.fixed_out_channels = channels
        self.local = MaxPool1d(local, 1, padding="causal")
        self.g = nn.Linear(channels, channels)
        self.s = nn.Linear(channels, channels)
        self.l = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)
        if attend is not None:
            self.q = nn.Linear(channels, channels)
            self.k = nn.Linear(channels, channels)
            self.v = nn.Linear(channels, channels)

    @property
    def period(self) -> int:
        return self.segment

    def state_spec(self, in_channels: int | None = None) -> Spec:
        # the prefix mean divides by the absolute frame count: streams batch at equal clocks only
        return {**super().state_spec(in_channels), "t_in": clock(rebase=False)}

    def _inner_spec(self, in_channels: int | None) -> Spec:
        tail: Spec = {} if self.attend is None else {
            "tail": tensor("B", self.channels, self.attend - 1, grows=-1, lazy=True)}
        return {**tail, "total": tensor("B", self.channels, lazy=True),
                "segmax": tensor("B", self.channels, lazy=True),
                "seen": tensor("B", dtype=torch.long),  # frames since the row's start
                "local": self.local.state_spec(self.channels)}

    def _fuse(self, x: Tensor, g: Tensor, s: Tensor, loc: Tensor) -> Tensor:
        def lin(layer: nn.Linear, v: Tensor) -> Tensor:
            return F.linear(v.transpose(1, 2), layer.weight, layer.bias)

        mixed = x.transpose(1, 2) * lin(self.g, g) + lin(self.s, s) + lin(self.l, loc)
        return self.out(mixed).transpose(1, 2)

    def _attend(self, g: Tensor, full: Tensor, seen: Tensor) -> Tensor:
        """The second stage for the last ``n`` frames of ``full [B, C, L]`` (queries from
        ``g [B, C, n]``); ``seen [B]``: each row's frames before them since its start.  Keys
        before a row's start or ``attend`` frames back are masked (relative indices only, so
        an exported step needs no Python clock)."""
        assert self.attend is not None
        n, span = g.shape[-1], full.shape[-1]
        q = self.q(g.transpose(1, 2))
        k, v = self.k(full.transpose(1, 2)), self.v(full.transpose(1, 2))
        scores = q @ k.transpose(1, 2) / self.channels ** 0.5  # [B, n, L]
        u = torch.arange(n, device=g.device)[:, None]
        s = torch.arange(span, device=g.device)[None, :] - (span - n)
        ok = ((s <= u) & (s > u - self.attend))[None] & (s[None] >= -seen.view(-1, 1, 1))
        att = torch.softmax(scores.masked_fill(~ok, float("-inf")), -1)  # key s = u is valid
        return (att @ v).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        g, _ = prefix_mean(x)
        if self.attend is not None:
            g = self._attend(g, x, torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
        return self._fuse(x, g, segment_max(x, 0, self.segment, None), self.local(x))

    def _advance(self, x: Tensor, inner: dict[str, Any], t: int) -> tuple[Tensor, dict[str, Any]]:
        g, total = prefix_mean(x, inner["total"], inner["seen"])
        s = segment_max(x, t, self.segment, inner["segmax"])
        loc, local_state = self.local.step(x, inner["local"])
        new = {"total": total, "segmax": s[..., -1], "seen": inner["seen"] + x.shape[-1],
               "local": local_state}
        if self.attend is not None:
            tail = inner["tail"]
            full = x if tail is None else torch.cat([tail, x], -1)
            g = self._attend(g, full, inner["seen"])
            new["tail"] = full[..., max(0, full.shape[-1] - (self.attend - 1)):]
        return self._fuse(x, g, s, loc), new

    def _restart(self, inner: dict[str, Any], rows: Tensor, t: int) -> dict[str, Any]:
        # restarts fall on segment boundaries (the period), where the segment max restarts
        total = inner["total"]
        return {**inner, "seen": inner["seen"].masked_fill(rows, 0),
                "total": None if total is None else total.masked_fill(rows.view(-1, 1), 0.0)}

    def reset_rows(self, state: dict[str, Any], mask: Tensor, start: int) -> dict[str, Any]:
        state = super().reset_rows(state, mask, start)
        local = self.local.reset_rows(state["inner"]["local"], mask, start)
        return {**state, "inner": {**state["inner"], "local": local}}
