"""Base class for layers whose state summarises the whole past (no lookahead).

A recurrent layer's state must restart exactly at a restarted row's first frame.  That frame may
reach the layer after ``reset`` was called, when upstream layers with lookahead still have old
frames in flight; so the reset only records the row's start, and ``step`` cuts each chunk at the
rows' start frames and puts those rows back to a fresh summary right there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from streamwise.core import state as spec_tools
from streamwise.core.protocol import StreamingModule, param_dtype_device, with_reset_rows
from streamwise.core.state import Spec, clock, restart, tensor


class Recurrence(StreamingModule):
    """Subclasses implement ``_fresh``, ``_advance`` and ``_restart``; this class keeps the
    clock and the per-row starts."""

    in_ndim = 3

    def _inner_spec(self, in_channels: int | None) -> Spec:
        """The declaration of the summary (``core/state.py``)."""
        raise NotImplementedError

    def _fresh(self, batch_size: int, device: torch.device | str | None,
               dtype: torch.dtype | None) -> Any:
        """The summary of an empty past."""
        dev, dt = param_dtype_device(self, device, dtype)
        return spec_tools.build(self._inner_spec(None), batch_size, dev, dt)

    def _advance(self, x: Tensor, inner: Any, t: int) -> tuple[Tensor, Any]:
        """Outputs for chunk ``x`` (first frame at absolute index ``t``) and the new summary."""
        raise NotImplementedError

    def _restart(self, inner: Any, rows: Tensor, t: int) -> Any:
        """The summary with ``rows`` (bool ``[B]``) back to an empty past, at frame ``t``."""
        raise NotImplementedError

    def state_spec(self, in_channels: int | None = None) -> Spec:
        return {"inner": self._inner_spec(in_channels), "t_in": clock(),
                "start": tensor("B", dtype=torch.long), "start_max": restart(-1)}

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        n, t = x.shape[-1], state["t_in"]
        if n == 0:
            return x.new_empty(x.shape[0], self.channels_out(x.shape[1]) or x.shape[1], 0), state
        inner = state["inner"]
        if state["start_max"] < t:  # no row restarts inside this chunk
            y, inner = self._advance(x, inner, t)
            return y, {**state, "inner": inner, "t_in": t + n}
        starts = state["start"]
        bounds = sorted({int(s) for s in starts.tolist() if t <= s < t + n})
        ys, cur = [], t
        for b in [*bounds, t + n]:
            if b > cur:
                y, inner = self._advance(x[..., cur - t : b - t], inner, cur)
                ys.append(y)
                cur = b
            if b < t + n:
                inner = self._restart(inner, starts == b, b)
        y = ys[0] if len(ys) == 1 else torch.cat(ys, -1)
        return y, {**state, "inner": inner, "t_in": t + n}

    def reset_rows(self, state: dict[str, Any], mask: Tensor, start: int) -> dict[str, Any]:
        return with_reset_rows(state, mask, start)
