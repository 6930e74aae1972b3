"""Latency-aware scoring (DAMO-StreamNet's streaming metric): judge each output against the world
at the moment it is emitted, not at the moment its input was taken.

A stream model answers frame ``j`` (nominal time ``j * frame_s``) only once the chunk holding its
last needed sample has arrived and the push that answered it has run, one push at a time:

    start_k = max(arrival_k, done_{k-1}),  done_k = start_k + compute_scale * compute(push k)

where ``arrival_k`` is the time chunk ``k``'s last sample arrives; every frame push ``k`` answers
is emitted at ``done_k``.  When a push takes longer than its chunk lasts, the backlog grows and
so does every later delay, as in a real-time system that cannot keep up.  ``emitted`` streams a
signal through a model on that clock (the push's compute is measured, ``compute_scale`` stands
for a slower device), and ``at_emission`` reads a ground truth
defined over time at each emission instant.  Offline scoring compares ``y_j`` with
``truth(j * frame_s)``; streaming scoring with ``truth(emitted_j)``, so lookahead, chunking and
compute all cost accuracy where the world changes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from streamwise.core.protocol import StreamingModule


def emitted(model: StreamingModule, x: Tensor, chunk: int, sample_rate: float,
            compute_scale: float = 1.0) -> tuple[Tensor, np.ndarray]:
    """Stream ``x [B, C, T]`` (time last) in chunks of ``chunk`` samples; return the outputs
    (pushes, then the flush) and each output frame's emission time in seconds ``[T']``.

    The flush runs when the stream ends (after the last sample and the last push).
    ``compute_scale`` multiplies every measured compute (0: free compute)."""
    if chunk < 1 or sample_rate <= 0 or compute_scale < 0:
        raise ValueError(f"expected chunk >= 1, sample_rate > 0 and compute_scale >= 0, got "
                         f"{chunk}, {sample_rate}, {compute_scale}")
    if not isinstance(x, Tensor) or x.dim() < 2:
        raise ValueError(f"expected a signal [B, C, T] with time last, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    stream = model.stream(x.shape[0], dtype=x.dtype, device=x.device)
    ys: list[Tensor] = []
    times: list[np.ndarray] = []
    total, done = x.shape[-1], 0.0
    with torch.inference_mode():
        for start in [*range(0, total, chunk), total]:  # the last one is the flush
            piece = x[..., start : start + chunk]
            t0 = time.perf_counter()
            y = stream.push(piece) if start < total else stream.close()
            spent = time.perf_counter() - t0
            done = max((start + piece.shape[-1]) / sample_rate, done) + compute_scale * spent
            ys.append(y)
            times.append(np.full(y.shape[-1], done))
    return torch.cat(ys, -1), np.concatenate(times)


def at_emission(truth: Any, frame_s: float, when_s: np.ndarray) -> np.ndarray:
    """``truth`` (one value per frame of ``frame_s`` seconds) as the world was at each instant of
    ``when_s``: the frame that instant falls in, a frame owning its end (``ceil(t / frame_s) -
    1``: an output emitted the moment its frame ends, with no compute, is scored on its own
    frame), the first frame before it and the last past the end."""
    values = np.asarray(truth)
    if values.ndim != 1 or not values.size:
        raise ValueError(f"expected a non-empty 1-D truth, got shape {values.shape}")
    if frame_s <= 0:
        raise ValueError(f"expected frame_s > 0, got {frame_s}")
    idx = np.clip(np.ceil(np.asarray(when_s) / frame_s - 1e-9).astype(np.int64) - 1, 0,
                  values.size - 1)
    return values[idx]


def f1(pred: Any, truth: Any) -> float:
    """F1 of the positive class of two boolean sequences (1.0 when both have no positive)."""
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"expected predictions and truth of one shape, got {p.shape}, {t.shape}")
    tp = float(np.sum(p & t))
    denom = float(np.sum(p) + np.sum(t))
    return 1.0 if denom == 0 else 2 * tp / denom
