"""``FrameStream``: the window adapter for per-frame models (CREPE-style pitch, frame classifiers).

Many audio models cut the signal into frames of ``frame_length`` samples every ``hop`` samples
(centred by padding half a frame at both ends) and run an opaque network on each frame, often
normalising the frame first.  No rewriting is needed: each output depends on exactly one frame,
so buffering ``frame_length - hop`` samples and running the network on every frame that has fully
arrived gives the offline output exactly.  The frames are the sliding windows of ``TimeWindow``,
so the absolute alignment, the padding at both ends and ``flush`` are the package's own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from streamwise.layers.window import TimeWindow


class FrameStream(TimeWindow):
    """Streams ``frame_model`` (``[M, C, frame_length] -> [M, *out]``) over ``[B, C, T]`` audio.

    The offline output is ``[B, *out, N]`` with ``N = 1 + (T + 2*pad - frame_length) // hop``
    frames, ``pad = frame_length // 2`` when ``center`` (as ``torch.stft`` and CREPE do), else 0.
    """

    in_ndim = 3

    def __init__(self, frame_model: nn.Module, frame_length: int, hop: int, *,
                 center: bool = True, pad_value: float = 0.0) -> None:
        super().__init__()
        if frame_length < 1 or hop < 1:
            raise ValueError(f"need frame_length >= 1 and hop >= 1, got {frame_length}, {hop}")
        self.frame_model, self.frame_length, self.hop = frame_model, frame_length, hop
        pad = frame_length // 2 if center else 0
        self._setup_window(frame_length, hop, pad, pad, pad_value=pad_value)
        self._out_shape: tuple[int, ...] | None = None

    def _run_frames(self, x: Tensor, m: int) -> Tensor:
        """The model on the first ``m`` frames of ``x`` (frames start every ``hop`` samples)."""
        b, c = x.shape[0], x.shape[1]
        frames = x[..., : (m - 1) * self.hop + self.frame_length].unfold(-1, self.frame_length,
                                                                         self.hop)
        y = self.frame_model(frames.permute(0, 2, 1, 3).reshape(b * m, c, self.frame_length))
        self._out_shape = tuple(y.shape[1:])
        y = y.reshape(b, m, *y.shape[1:])
        return y.movedim(1, -1)

    def _window_op(self, window: Tensor, m: int) -> Tensor:
        with torch.no_grad():
            return self._run_frames(window, m)

    def _empty_out(self, x: Tensor) -> Tensor:
        if self._out_shape is None:  # learn the per-frame output shape once
            with torch.no_grad():
                self._run_frames(x.new_zeros(1, x.shape[1], self.frame_length), 1)
        assert self._out_shape is not None
        return x.new_zeros(x.shape[0], *self._out_shape, 0)

    def forward(self, x: Tensor) -> Tensor:
        pad = self._pad_left
        xp = torch.nn.functional.pad(x, (pad, pad), value=self._pad_value)
        m = self._n_blocks(x.shape[-1])
        if m == 0:
            return self._empty_out(x)
        return self._run_frames(xp, m)
