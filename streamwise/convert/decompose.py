"""Whole-signal torch functions the tracer records as the ops they are made of.

``torch.istft`` is one opaque call over the whole sequence, yet it is per-frame inverse FFTs, an
overlap-add and a division by the window's own overlap-add (the envelope).  Recorded as those
ops, each streams: the FFTs per frame, the overlap-adds as ``F.fold`` (``windows.fold_op``), the
centre padding as a crop of ``n_fft // 2`` frames at each end.  A call with settings outside what
is decomposed here (normalized, a requested length, complex output, two-sided, a 2-D input) is
recorded as it is, and refused where it reaches the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

#: what a decomposition returns when the call's settings are outside what it covers
AS_IT_IS = object()


def istft(input: Any, n_fft: int, hop_length: int | None = None,
          win_length: int | None = None, window: Any = None, center: bool = True,
          normalized: bool = False, onesided: bool | None = None, length: int | None = None,
          return_complex: bool = False) -> Any:
    """``torch.istft`` on ``[B, n_fft // 2 + 1, T]`` as irfft, window, overlap-add, envelope."""
    if normalized or return_complex or length is not None or onesided is False \
            or input.dim() != 3:
        return AS_IT_IS
    hop = hop_length if hop_length is not None else n_fft // 4
    win = win_length if win_length is not None else n_fft
    frames = torch.fft.irfft(input, n_fft, dim=-2)  # [B, n_fft, T]
    count = input.shape[-1]
    if window is None:  # ones over win_length samples, zero-padded to n_fft
        squares = torch.ones_like(frames[:1, :win])
        window = squares[0, :, :1]
    else:
        squares = window.square()[None, :, None].expand(1, win, count)
        window = window[:, None]
    left = (n_fft - win) // 2
    if left or n_fft - win:
        pad = (0, 0, left, n_fft - win - left)
        window, squares = F.pad(window, pad), F.pad(squares, pad)
    frames = frames * window
    size = (count - 1) * hop + n_fft

    def overlap_add(blocks: Any) -> Any:
        return F.fold(blocks, output_size=(1, size), kernel_size=(1, n_fft), stride=(1, hop))

    y = overlap_add(frames)[:, 0, 0]
    envelope = overlap_add(squares)[0, 0, 0]
    cut = n_fft // 2 if center else 0
    if cut:
        y, envelope = y[:, cut:-cut], envelope[cut:-cut]
    return y / envelope


DECOMPOSED: dict[Callable[..., Any], Callable[..., Any]] = {torch.istft: istft}
