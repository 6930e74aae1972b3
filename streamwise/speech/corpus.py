"""The recogniser's words, and the speech to train and test it on.

- The vocabulary is the digits, a few commands, and the words spoken in alsa-utils'
  recordings (front, rear, side, left, right, center).
- Training speech is synthesised here with espeak-ng (and, for a share of it, flite's voices made
  from real speakers' recordings). Each utterance is one to three words, with
  its own voice (an accent and a variant), rate, pitch, room (RT60) and noise (SNR), all drawn
  from a seeded generator.  The training and test voices are disjoint, so tests hear speakers
  the model never heard.
- Real speech to test on comes from the WAV files that Debian's alsa-utils installs in
  ``/usr/share/sounds/alsa``: one person saying each speaker position ("Front Left", ...).
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from streamwise.speech.augment import add_noise, reverberate
from streamwise.speech.synth import RATE, espeak, flite, resample

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = ("yes", "no", "up", "down", "stop", "go", "on", "off")
POSITIONS = ("front", "rear", "side", "left", "right", "center")
WORDS = DIGITS + COMMANDS + POSITIONS
ALPHABET = " abcdefghijklmnopqrstuvwxyz'"  # CTC labels 1..28; 0 is the blank

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029")
TRAIN_VARIANTS = ("", "m1", "m2", "m3", "m4", "f1", "f2", "f3", "f4", "Alicia", "Andrea",
                  "adam", "Alex", "max", "steph", "john")
TEST_VARIANTS = ("m5", "f5", "m7", "robert", "Annie")
#: flite's voices, built from recordings of real speakers (awb Scottish male, rms US male, slt US
#: female, kal16 a US male diphone voice): training only, so tests hear espeak voices held out
FLITE_VOICES = ("awb", "rms", "slt", "kal16")

ALSA_SOUNDS = Path("/usr/share/sounds/alsa")


def voices(split: str) -> list[str]:
    """espeak-ng voice names of ``split`` ("train" or "test"): every accent with each variant."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    variants = TRAIN_VARIANTS if split == "train" else TEST_VARIANTS
    return [a + (f"+{v}" if v else "") for a in ACCENTS for v in variants]


def encode(text: str) -> list[int]:
    """Characters to CTC labels (1-based; 0 is the blank)."""
    bad = sorted({c for c in text if c not in ALPHABET})
    if bad:
        raise ValueError(f"characters {bad} are not in the alphabet {ALPHABET!r}")
    return [ALPHABET.index(c) + 1 for c in text]


def decode(labels: list[int]) -> str:
    return "".join(ALPHABET[i - 1] for i in labels if i > 0)


def word_labels(text: str) -> list[int]:
    """Words to the recogniser's CTC labels: ``WORDS[i]`` is label ``i + 1`` (0 is the blank)."""
    bad = [w for w in text.split() if w not in WORDS]
    if bad:
        raise ValueError(f"words {bad} are not in the vocabulary {WORDS}")
    return [WORDS.index(w) + 1 for w in text.split()]


def label_words(labels: list[int]) -> str:
    """CTC labels (blanks dropped) back to words."""
    return " ".join(WORDS[i - 1] for i in labels if i > 0)


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray  # float32 at 16 kHz
    text: str
    voice: str
    words_per_min: int
    pitch: int
    rt60_s: float
    snr_db: float


def utterances(n: int, split: str = "train", seed: int = 0, max_words: int = 3,
               progress: bool = False, flite_share: float = 0.0) -> Iterator[Utterance]:
    """``n`` synthesised utterances of ``split``'s voices, reproducible from ``seed``; a share
    ``flite_share`` of them (training only) by flite's voices instead of espeak-ng's."""
    if flite_share and split != "train":
        raise ValueError("flite's voices are training voices: flite_share needs split='train'")
    rng = np.random.default_rng(seed)
    pool = voices(split)
    for _ in tqdm(range(n), desc=f"synthesising {split} speech", unit="utt",
                  disable=not progress):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(1, max_words + 1))]
        text = " ".join(words)
        voice = pool[int(rng.integers(len(pool)))]
        wpm, pitch = int(rng.integers(120, 220)), int(rng.integers(25, 75))
        rt60 = float(rng.choice([0.0, rng.uniform(0.1, 0.6)]))
        snr = float(rng.uniform(5, 30))
        if flite_share and rng.random() < flite_share:
            voice = "flite:" + FLITE_VOICES[int(rng.integers(len(FLITE_VOICES)))]
            f0 = float(rng.uniform(80, 190)) if rng.random() < 0.5 else None
            x = flite(text, voice[6:], stretch=175 / wpm, f0_mean=f0)
        else:
            x = espeak(text, voice, wpm, pitch)
        x = x * float(rng.uniform(0.3, 1.0)) / max(float(np.abs(x).max()), 1e-6)
        lead = np.zeros(int(rng.integers(0, RATE // 4)), np.float32)  # silence around it
        x = np.concatenate([lead, x, np.zeros(int(rng.integers(0, RATE // 4)), np.float32)])
        x = reverberate(x, rt60, RATE, rng)
        x = add_noise(x, snr, rng, colour="white" if rng.random() < 0.5 else "brown")
        yield Utterance(x, text, voice, wpm, pitch, rt60, snr)


def alsa_recordings(folder: Path | str = ALSA_SOUNDS) -> list[tuple[np.ndarray, str]]:
    """alsa-utils' speaker-test voices at 16 kHz with their words (``Front_Left.wav`` ->
    ``"front left"``); ``Noise.wav`` is not speech and is left out."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.wav") if p.stem != "Noise")
    if not files:
        raise FileNotFoundError(f"no alsa-utils recordings in {folder} (Debian package "
                                "alsa-utils; scripts/setup.sh installs it)")
    out = []
    for p in files:
        with wave.open(str(p)) as w:
            if w.getsampwidth() != 2:
                raise ValueError(f"{p}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32)
            pcm = pcm.reshape(-1, w.getnchannels()).mean(axis=1) / 32768.0
            rate = w.getframerate()
        out.append((resample(pcm, rate, RATE), p.stem.replace("_", " ").lower()))
    return out
