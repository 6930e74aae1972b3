"""A voice-activity-detector-sized streaming net (~13 k parameters): the light model for serving.

Strided causal conv front end (2 ms hop at 16 kHz), a causal conv, a GRU and a sigmoid read-out:
about the size of the small VADs people run per microphone.  Random weights from ``seed``; it is
a load-test subject, not a trained detector.
"""

from __future__ import annotations

import torch

import streamwise as sw


def tiny_vad(seed: int = 0, hidden: int = 32) -> sw.Sequential:
    """``[B, 1, T]`` audio -> ``[B, 1, T / 32]`` speech probability, causal, period 32 samples."""
    torch.manual_seed(seed)
    return sw.Sequential(
        sw.Conv1d(1, hidden, 64, stride=32, padding="causal"),
        sw.ReLU(),
        sw.Conv1d(hidden, hidden, 3, padding="causal"),
        sw.ReLU(),
        sw.GRU(hidden, hidden),
        sw.Conv1d(hidden, 1, 1),
        sw.Sigmoid(),
    ).eval()
