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

from streamwise.convert.node_ops import Sliding


class FrameStream(Sliding):
    """Streams ``frame_model`` (``[M, C, frame_length] -> [M, *out]``) over ``[B, C, T]`` audio.

    The offline output is ``[B, *out, N]`` with ``N = 1 + (T + 2*pad - frame_length) // hop``
    frames, ``pad = frame_length // 2`` when ``center`` (as ``torch.stft`` and CREPE do), else 0.
    """

    in_ndim = 3

    def __init__(self, frame_model: nn.Module, frame_length: int, hop: int, *,
                 center: bool = True, pad_value: float = 0.0) -> None:
        if frame_length < 1 or hop < 1:
            raise ValueError(f"need frame_length >= 1 and hop >= 1, got {frame_length}, {hop}")
        pad = frame_length // 2 if center else 0
        super().__init__(self._stream_frames, frame_length, hop, (pad, pad), pad_value=pad_value)
        self.frame_model, self.frame_length, self.hop = frame_model, frame_length, hop

    def _run_frames(self, x: Tensor) -> Tensor:
        """The model on every whole frame of ``x`` (frames start every ``hop`` samples)."""
        b, c = x.shape[0], x.shape[1]
        frames = x.unfold(-1, self.frame_length, self.hop)  # [B, C, M, frame_length]
        m = frames.shape[2]
        y = self.frame_model(frames.permute(0, 2, 1, 3).reshape(b * m, c, self.frame_length))
        return y.reshape(b, m, *y.shape[1:]).movedim(1, -1)

    def _stream_frames(self, window: Tensor) -> Tensor:
        with torch.no_grad():
            return self._run_frames(window)

    def forward(self, x: Tensor) -> Tensor:
        pad = self._pad_left
        xp = torch.nn.functional.pad(x, (pad, pad), value=self._pad_value)
        if self._n_blocks(x.shape[-1]) == 0:
            return self._empty_out(x)
        return self._run_frames(xp)
