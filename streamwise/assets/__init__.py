"""Data the package ships: a short speech recording for the demo and benchmarks."""

from __future__ import annotations

import wave
from importlib import resources

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


def speech() -> tuple[torch.Tensor, int]:
    """The shipped recording: espeak-ng (voice en-us) saying ``SPEECH_TEXT``, 16 kHz mono."""
    ref = resources.files("streamwise.assets").joinpath("speech_16k.wav")
    with resources.as_file(ref) as p:
        return load_wav(str(p))
