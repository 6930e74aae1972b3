"""``RingLayer``: ``Sinks`` / ``Window`` decoding with no copy of the cache per token.

The generic layer concatenates the new key to the kept entries, then selects the survivors: two
copies of the whole cache per token, where ``DynamicCache`` makes one.  For one-token steps this
layer keeps a preallocated buffer of ``n_sink + window`` slots instead: the sinks in the first
``n_sink`` slots, the window as a ring behind them,

    slot(p) = p                                     for p < n_sink
    slot(p) = n_sink + (p - n_sink) mod window      otherwise,

so token ``p`` overwrites token ``p - window``, the one its query no longer sees.  The buffer
itself is returned (attention does not care about the order of keys; one query sees them all).
For within-cache positions only the sinks move: a sink ``s`` is shown at ``s + shift`` with
``shift = p + 1 - filled``; the model's own rotation of it is kept apart and turned once per
step into the buffer (``n_sink`` keys, not the cache).  Chunks of several tokens, masks and beam
reordering go through the generic path on the entries, materialised from the ring on demand;
the next one-token step rebuilds the ring from them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from streamwise.attention.cache.sinks import Sinks
from streamwise.attention.cache.window import Window
from streamwise.hf.policy_layer import PolicyLayer
from streamwise.hf.rope import rerotate


class RingLayer(PolicyLayer):
    """A ``PolicyLayer`` for ``Sinks`` and ``Window`` whose one-token steps copy nothing."""

    def __init__(self, policy: Any, inv_freq: Tensor | None, owner: Any) -> None:
        self.n_sink, self.window = int(policy.n_sink), int(policy.window)
        self.cap = self.n_sink + self.window
        self._ring: dict[str, Any] | None = None
        self._entries: dict[str, Tensor] = {}
        super().__init__(policy, inv_freq, owner)

    # -- the entries: the ring's contents in arrival order, or the generic path's dict ---------
    @property
    def entries(self) -> dict[str, Tensor]:
        return self._entries if self._ring is None else self._materialise()

    @entries.setter
    def entries(self, value: dict[str, Tensor]) -> None:
        self._entries, self._ring = value, None

    def _slots(self, pos: Tensor) -> Tensor:
        ring = self.n_sink + (pos - self.n_sink).remainder(self.window)
        return torch.where(pos < self.n_sink, pos, ring)

    def _kept_positions(self, device: Any) -> Tensor:
        """Positions kept between steps after ``seen`` tokens: the sinks and the last
        ``window - 1`` (all of them while fewer than ``cap`` were seen)."""
        t = self.seen
        recent = torch.arange(max(min(t, self.n_sink), t - self.window + 1), t, device=device)
        return torch.cat([torch.arange(min(t, self.n_sink), device=device), recent])

    def _materialise(self) -> dict[str, Tensor]:
        r = self._ring
        assert r is not None
        pos = self._kept_positions(r["k"].device)
        slots = self._slots(pos)
        k = r["k"].index_select(2, slots)
        n_s = min(self.seen, self.n_sink)
        if n_s:  # the model's own rotation of the sinks, not the turned copies
            k = torch.cat([r["raw"][:, :, :n_s], k[:, :, n_s:]], 2)
        b, n = k.shape[0], pos.numel()
        rows = pos[None].expand(b, n)
        return {"k": k, "v": r["v"].index_select(2, slots), "pos": rows,
                "seg": torch.zeros_like(rows), "lidx": rows,
                "bias": torch.zeros(b, n, dtype=k.dtype, device=k.device),
                "pin": torch.zeros(b, n, dtype=torch.bool, device=k.device),
                "valid": torch.ones(b, n, dtype=torch.bool, device=k.device)}

    def _build(self) -> dict[str, Any]:
        e = self._entries
        b, h, _, d = e["k"].shape
        k = e["k"].new_zeros(b, h, self.cap, d)
        v = e["v"].new_zeros(b, h, self.cap, d)
        slots = self._slots(e["pos"][0])
        k.index_copy_(2, slots, e["k"])
        v.index_copy_(2, slots, e["v"])
        raw = e["k"].new_zeros(b, h, self.n_sink, d)
        sinks = (e["pos"][0] < self.n_sink).nonzero().flatten()
        raw[:, :, e["pos"][0, sinks]] = e["k"][:, :, sinks]
        self._ring = {"k": k, "v": v, "raw": raw, "shift": 0}
        return self._ring

    # -- one-token steps -----------------------------------------------------------------------
    def update(self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any
               ) -> tuple[Tensor, Tensor]:
        if not self.is_initialized or key_states.shape[-2] != 1:
            return super().update(key_states, value_states, *args, **kwargs)
        ring = self._ring if self._ring is not None else self._build()
        p = self.seen
        slot = p if p < self.n_sink else self.n_sink + (p - self.n_sink) % self.window
        ring["k"][:, :, slot] = key_states[:, :, 0]
        ring["v"][:, :, slot] = value_states[:, :, 0]
        if p < self.n_sink:
            ring["raw"][:, :, p] = key_states[:, :, 0]
        filled = min(p + 1, self.cap)
        if self.policy.positions == "within_cache" and self.inv_freq is not None and self.n_sink:
            shift = p + 1 - filled  # every sink moves by the same amount
            if shift != ring["shift"]:
                ring["k"][:, :, : self.n_sink] = rerotate(ring["raw"], torch.full(
                    (self.n_sink,), shift, device=ring["raw"].device), self.inv_freq)
                ring["shift"] = shift
        self.seen += 1
        self.keys, self.values = ring["k"][:, :, :filled], ring["v"][:, :, :filled]
        return self.keys, self.values

    def kept(self) -> int:
        if self._ring is None:
            return super().kept()
        return min(self.seen, self.cap - 1)

    def nbytes(self) -> int:
        if self._ring is None:
            return super().nbytes()
        r = self._ring
        return sum(int(r[f].numel() * r[f].element_size()) for f in ("k", "v", "raw"))

    def reset(self) -> None:
        super().reset()
        self._ring = None

    @staticmethod
    def suits(policy: Any) -> bool:
        """``Sinks`` and ``Window`` exactly (not their subclasses, whose rules may differ)."""
        return type(policy) in (Sinks, Window)

