"""Stable-token commit decoding (CarelessWhisper / whisper-streaming's local agreement).

As audio arrives, a model with more context than the live chunk (by default full context over
a sliding window) re-decodes the last ``window_s`` seconds at every update.  Its words after
the last committed one are candidates; the longest prefix on which the last ``agree``
hypotheses agree (same word, first frame within ``jitter`` frames) is committed and never
changes again; the rest is shown as the tentative tail and may still change.  At the end of the
stream the last hypothesis is committed whole.

A word whose first frame lies within ``edge_s`` of the window's start may be a cut-off word, so
it is not a candidate (the window slides in whole 40 ms frames, so frame numbers stay absolute).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch
from torch import Tensor

from streamwise.layers.containers import Sequential
from streamwise.models.asr import FRAME_SAMPLES, RATE
from streamwise.speech.recognizer import GreedyCTC, Word


@dataclass
class Update:
    committed: list[Word] = field(default_factory=list)  # new, final
    tentative: list[Word] = field(default_factory=list)  # the whole tail shown now


def _agree(a: Word, b: Word, jitter: int) -> bool:
    return a.text == b.text and abs(a.frame - b.frame) <= jitter


class LocalAgreement:
    """One live stream decoded by re-running ``model`` over a sliding window."""

    def __init__(self, model: Sequential, window_s: float = 2.5, agree: int = 2,
                 jitter: int = 3, edge_s: float = 0.2) -> None:
        if agree < 1:
            raise ValueError(f"agree must be >= 1 hypothesis, got {agree}")
        self.model = model.eval()
        self.window = int(window_s * RATE) // FRAME_SAMPLES * FRAME_SAMPLES
        self.agree, self.jitter = agree, jitter
        self.edge = int(edge_s * RATE / FRAME_SAMPLES)
        self.buffer = torch.zeros(0)
        self.offset = 0  # samples dropped from the buffer's start (whole frames)
        self.samples = 0
        self.committed: list[Word] = []
        self.history: deque[list[Word]] = deque(maxlen=agree)
        self.closed = False

    @property
    def _last_frame(self) -> int:
        return self.committed[-1].frame if self.committed else -(1 << 30)

    def _hypothesis(self) -> list[Word]:
        with torch.inference_mode():
            logp = self.model(self.buffer.reshape(1, 1, -1))
        first = self.offset // FRAME_SAMPLES
        now = self.samples / RATE
        words = [Word(w.text, w.frame + first, now)
                 for w in GreedyCTC().feed(logp[0].argmax(0).tolist(), now)]
        if self.offset:
            words = [w for w in words if w.frame >= first + self.edge]
        return [w for w in words if w.frame > self._last_frame + self.jitter]

    def push(self, audio: Tensor) -> Update:
        """Append ``audio`` (1-D float32 at 16 kHz), re-decode, commit what became stable."""
        if self.closed:
            raise RuntimeError("push after close")
        self.buffer = torch.cat([self.buffer, audio.reshape(-1).float()])
        self.samples += audio.numel()
        drop = max(0, self.buffer.numel() - self.window) // FRAME_SAMPLES * FRAME_SAMPLES
        if drop:
            self.buffer, self.offset = self.buffer[drop:], self.offset + drop
        hyp = self._hypothesis()
        self.history.append(hyp)
        new: list[Word] = []
        if len(self.history) == self.agree:
            last = self._last_frame
            olds = [[w for w in h if w.frame > last + self.jitter] for h in self.history]
            for i, w in enumerate(olds[-1]):
                if all(i < len(h) and _agree(h[i], w, self.jitter) for h in olds[:-1]):
                    new.append(w)
                else:
                    break
        self.committed += new
        return Update(new, [w for w in hyp if w.frame > self._last_frame + self.jitter])

    def close(self) -> Update:
        """End of stream: the last hypothesis is final."""
        if self.closed:
            raise RuntimeError("close after close")
        self.closed = True
        if self.buffer.numel() == 0:
            return Update()
        new = self._hypothesis()
        self.committed += new
        return Update(new, [])
