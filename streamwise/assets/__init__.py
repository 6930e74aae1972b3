"""Data the package ships: a short speech recording for the demo and benchmarks."""

from __future__ import annotations

import json
import wave
from importlib import resources
from typing import Any

import numpy as np
import torch

SPEECH_TEXT = (
    "Streamwise runs neural networks on live streams, chunk by chunk, "
    "with the same output as offline."
)


def load_wav(path: str) -> tuple[torch.Tensor, int]:
    """Read a 16-bit PCM WAV file as float32 ``[channels, T]`` in [-1, 1] and its rate."""
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    audio = data.reshape(-1, channels).T.astype(np.float32) / 32768.0
    return torch.from_numpy(np.ascontiguousarray(audio)), rate


def make_noise(n_samples: int, seed: int = 0) -> torch.Tensor:
    """Evaluation noise: equal-power white + brown noise, unit RMS, float32 ``[n_samples]``.

    Brown noise is white noise through a leaky integrator (pole 0.995: a 1/f^2 spectrum above
    ~13 Hz), computed exactly in the frequency domain of a zero-padded signal.
    """
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n_samples)
    drive = rng.standard_normal(n_samples)
    n_fft = 2 * n_samples
    response = 1.0 / (1.0 - 0.995 * np.exp(-2j * np.pi * np.fft.rfftfreq(n_fft)))
    brown = np.fft.irfft(np.fft.rfft(drive, n_fft) * response, n_fft)[:n_samples]
    white /= np.sqrt(np.mean(white**2))
    brown /= np.sqrt(np.mean(brown**2))
    noise = white + brown
    noise /= np.sqrt(np.mean(noise**2))
    return torch.from_numpy(noise.astype(np.float32))


def mix_at_snr(clean: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``clean`` plus ``noise`` scaled so that the mixture has the given SNR (whole signal)."""
    gain = clean.pow(2).mean().sqrt() / (noise.pow(2).mean().sqrt() * 10 ** (snr_db / 20))
    return clean + gain * noise


def snr_db(estimate: torch.Tensor, clean: torch.Tensor) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``clean``, in dB."""
    err = (estimate - clean).pow(2).sum()
    return float(10 * torch.log10(clean.pow(2).sum() / err.clamp_min(1e-20)))


def speech() -> tuple[torch.Tensor, int]:
    """The shipped recording: espeak-ng (voice en-us) saying ``SPEECH_TEXT``, 16 kHz mono."""
    ref = resources.files("streamwise.assets").joinpath("speech_16k.wav")
    with resources.as_file(ref) as p:
        return load_wav(str(p))


def words_clip() -> tuple[torch.Tensor, int, str]:
    """The recogniser's demo clip: words spoken by a held-out espeak-ng voice with pauses
    (``bench/asr.py make_clip`` made it), mono ``[T]`` at 16 kHz, and the words spoken."""
    base = resources.files("streamwise.assets")
    with resources.as_file(base.joinpath("asr_clip.wav")) as p:
        audio, rate = load_wav(str(p))
    return audio[0], rate, str(words_clip_info()["text"])


def words_clip_info() -> dict[str, Any]:
    """The clip's words (``text``), when each word's audio ends (``ends_s``), and its voice."""
    info: dict[str, Any] = json.loads(
        resources.files("streamwise.assets").joinpath("asr_clip.json").read_text())
    return info
