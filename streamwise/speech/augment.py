"""Acoustic conditions for synthesised speech: noise at an exact SNR, reverberation.

Reverberation is a convolution with a synthetic room response: a unit direct path, then
Gaussian noise under the envelope ``exp(-6.91 t / rt60)`` (60 dB down at ``rt60``), starting
after a short pre-delay; the result is scaled back to the dry signal's peak.
"""

from __future__ import annotations

import numpy as np


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator,
              colour: str = "white") -> np.ndarray:
    """``x`` plus noise whose power is exactly ``snr_db`` below the signal's."""
    noise = rng.standard_normal(x.shape)
    if colour == "brown":  # integrated white noise, detrended
        noise = np.cumsum(noise)
        noise -= np.linspace(noise[0], noise[-1], len(noise))
    elif colour != "white":
        raise ValueError(f"colour must be 'white' or 'brown', got {colour!r}")
    p_sig = float(np.mean(np.square(x, dtype=np.float64)))
    p_noise = float(np.mean(np.square(noise)))
    if p_sig == 0 or p_noise == 0:
        return x.astype(np.float32, copy=True)
    scale = np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))
    return (x + scale * noise).astype(np.float32)


def room_response(rt60_s: float, rate: int, rng: np.random.Generator,
                  predelay_s: float = 0.005) -> np.ndarray:
    """A synthetic impulse response of ``rt60_s`` seconds (60 dB decay)."""
    if rt60_s <= 0:
        return np.ones(1, dtype=np.float32)
    n = int(rt60_s * rate)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60_s) * 0.3
    tail[: int(predelay_s * rate)] = 0.0
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(x: np.ndarray, rt60_s: float, rate: int,
                rng: np.random.Generator) -> np.ndarray:
    """``x`` through a room of ``rt60_s``; same length, same peak (``rt60_s`` 0: ``x``)."""
    if rt60_s <= 0:
        return x.astype(np.float32, copy=True)
    h = room_response(rt60_s, rate, rng)
    size = 1 << int(np.ceil(np.log2(len(x) + len(h))))  # a linear convolution, by FFT
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[: len(x)]
    peak, wet_peak = float(np.abs(x).max(initial=0.0)), float(np.abs(wet).max(initial=0.0))
    return (wet * (peak / wet_peak if wet_peak else 1.0)).astype(np.float32)
