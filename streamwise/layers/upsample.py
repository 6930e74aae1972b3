"""Streaming ``Upsample`` along time by an integer factor (nearest or linear).

Linear interpolation (``align_corners=False``, edges replicated, as ``F.interpolate``) needs one
frame of lookahead.  Its weights depend only on the phase ``r`` of an output within its input
frame, so they are computed once, in float64, and the result does not depend on the position in
the stream.  ``F.interpolate`` computes each source coordinate in the tensor's dtype, which in
float32 drifts by about ``t * 2**-24`` at output ``t``; both agree to that drift.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from streamwise.layers.window import TimeWindow

_MODES = ("nearest", "linear")


def _linear_weights(u: int) -> list[tuple[float, float, float]]:
    """Weights on frames (i-1, i, i+1) for output phase r of input frame i, r = 0..u-1."""
    out = []
    for r in range(u):
        d = (r + 0.5) / u - 0.5  # source offset from frame i
        out.append((-d, 1 + d, 0.0) if d < 0 else (0.0, 1 - d, d))
    return out


class Upsample(TimeWindow):
    """Repeat (``nearest``) or interpolate (``linear``) each frame ``scale_factor`` times."""

    in_ndim = 3

    def __init__(self, scale_factor: int, mode: str = "nearest") -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"Upsample mode must be one of {_MODES}, got {mode!r}")
        if int(scale_factor) != scale_factor or scale_factor < 1:
            raise ValueError(f"Upsample needs an integer scale_factor >= 1, got {scale_factor}")
        self.scale_factor, self.mode = int(scale_factor), mode
        self._weights = _linear_weights(self.scale_factor)
        if mode == "nearest":
            self._setup_window(1, 1, 0, 0, block=self.scale_factor)
        else:
            self._setup_window(3, 1, 1, 1, replicate=True, block=self.scale_factor)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "nearest":
            return x.repeat_interleave(self.scale_factor, dim=-1)
        return self._window_op(F.pad(x, (1, 1), mode="replicate"), -1)

    def _window_op(self, window: Tensor, m: int) -> Tensor:
        if self.mode == "nearest":
            return window.repeat_interleave(self.scale_factor, dim=-1)
        prev, cur, nxt = window[..., :-2], window[..., 1:-1], window[..., 2:]
        phases = [
            a * prev + b * cur if c == 0.0 else b * cur + c * nxt for a, b, c in self._weights
        ]
        return torch.stack(phases, -1).flatten(-2)

    def _empty_out(self, x: Tensor) -> Tensor:
        return x.new_empty(*x.shape[:-1], 0)

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}, {self.extra_metadata()}"
