"""Long test streams whose word end times are known, for latency measurements.

Each word is synthesised alone (same voice, rate and pitch for the whole stream), trimmed to
where its level first and last exceeds 2% of its peak (``trim``), and placed after a pause of
``pause_s`` seconds drawn uniformly; a word's end time is the end of its trimmed audio.  The
stream then goes through one room and one noise, as ``corpus.utterances`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from streamwise.speech.augment import add_noise, reverberate
from streamwise.speech.corpus import WORDS, voices
from streamwise.speech.synth import RATE, espeak


@dataclass(frozen=True)
class TimedStream:
    audio: np.ndarray  # float32 at 16 kHz
    words: tuple[str, ...]
    ends_s: tuple[float, ...]  # when each word's audio ends
    voice: str

    @property
    def text(self) -> str:
        return " ".join(self.words)


def trim(x: np.ndarray, level: float = 0.02, frame: int = 160) -> np.ndarray:
    """``x`` from its first to its last 10 ms frame whose peak exceeds ``level`` x the peak."""
    n = len(x) // frame
    if n == 0:
        return x
    peaks = np.abs(x[: n * frame]).reshape(n, frame).max(axis=1)
    loud = np.flatnonzero(peaks > level * peaks.max())
    if loud.size == 0:
        return x[:0]
    return x[loud[0] * frame: (loud[-1] + 1) * frame]


def timed_streams(n: int, split: str = "test", seed: int = 0, words: tuple[int, int] = (4, 8),
                  pause_s: tuple[float, float] = (0.2, 0.8), snr_db: tuple[float, float] = (15, 30)
                  ) -> Iterator[TimedStream]:
    """``n`` reproducible streams of ``words`` (min, max) words of ``split``'s voices."""
    rng = np.random.default_rng(seed)
    pool = voices(split)
    for _ in range(n):
        count = int(rng.integers(words[0], words[1] + 1))
        chosen = tuple(WORDS[i] for i in rng.integers(0, len(WORDS), count))
        voice = pool[int(rng.integers(len(pool)))]
        wpm, pitch = int(rng.integers(130, 200)), int(rng.integers(30, 70))
        parts: list[np.ndarray] = []
        ends: list[float] = []
        t = 0
        for w in chosen:
            pause = np.zeros(int(rng.uniform(*pause_s) * RATE), np.float32)
            audio = trim(espeak(w, voice, wpm, pitch))
            audio = audio * (0.8 / max(float(np.abs(audio).max()), 1e-6))
            parts += [pause, audio]
            t += len(pause) + len(audio)
            ends.append(t / RATE)
        parts.append(np.zeros(int(pause_s[1] * RATE), np.float32))
        x = np.concatenate(parts)
        x = reverberate(x, float(rng.choice([0.0, rng.uniform(0.1, 0.4)])), RATE, rng)
        x = add_noise(x, float(rng.uniform(*snr_db)), rng)
        yield TimedStream(x, chosen, tuple(ends), voice)
