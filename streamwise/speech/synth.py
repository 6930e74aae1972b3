"""Speech from text with espeak-ng and flite (Debian packages; no network), at 16 kHz.

espeak-ng writes 22,050 Hz 16-bit mono WAV; ``resample`` takes it to 16 kHz with a windowed-sinc
polyphase filter: output sample ``n`` at input time ``t = n * src / dst`` is
``sum_k x[k] * h(t - k)``, ``h`` a Kaiser-windowed sinc cut at ``0.95 * min(src, dst) / 2``.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

RATE = 16_000
ESPEAK_RATE = 22_050
FLITE_RATE = 16_000


def espeak(text: str, voice: str = "en-us", words_per_min: int = 160, pitch: int = 50,
           rate: int = RATE) -> np.ndarray:
    """``text`` spoken by espeak-ng ``voice`` (e.g. ``"en-gb+Alicia"``), float32 at ``rate``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng; "
                           "scripts/setup.sh installs it)")
    if not text.strip():
        raise ValueError("espeak needs some text")
    out = subprocess.run([exe, "--stdout", "-v", voice, "-s", str(words_per_min), "-p",
                          str(pitch), text], capture_output=True, check=False, timeout=60)
    if out.returncode != 0 or len(out.stdout) <= 44:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: "
                           f"{out.stderr.decode(errors='replace')[-300:]}")
    pcm = np.frombuffer(out.stdout[44:], dtype="<i2").astype(np.float32) / 32768.0
    return resample(pcm, ESPEAK_RATE, rate)


def flite(text: str, voice: str = "slt", stretch: float = 1.0, f0_mean: float | None = None,
          rate: int = RATE) -> np.ndarray:
    """``text`` spoken by flite ``voice`` (``awb``, ``rms``, ``slt``, ``kal16``: voices built from
    recordings of real speakers), slowed by ``stretch``, float32 at ``rate``."""
    exe = shutil.which("flite")
    if exe is None:
        raise RuntimeError("flite is not installed (Debian package flite; scripts/setup.sh "
                           "installs it)")
    if not text.strip():
        raise ValueError("flite needs some text")
    known = _flite_voices(exe)
    if voice not in known:  # flite itself falls back to its default voice without a word
        raise RuntimeError(f"flite has no voice {voice!r}; it has {sorted(known)}")
    sets = [f"duration_stretch={stretch}"] + ([] if f0_mean is None else
                                              [f"int_f0_target_mean={f0_mean}"])
    with tempfile.TemporaryDirectory() as tmp:  # with --setf, flite writes nothing to stdout
        wav = f"{tmp}/out.wav"
        args = [exe, *[a for f in sets for a in ("--setf", f)], "-voice", voice, "-t", text,
                "-o", wav]  # features before the voice, or flite ignores them
        out = subprocess.run(args, capture_output=True, check=False, timeout=60)
        data = Path(wav).read_bytes() if out.returncode == 0 else b""
    if len(data) <= 44 or data[:4] != b"RIFF":
        raise RuntimeError(f"flite failed for voice {voice!r}: "
                           f"{out.stderr.decode(errors='replace')[-300:]}")
    pcm = np.frombuffer(data[44:], dtype="<i2").astype(np.float32) / 32768.0
    return resample(pcm, FLITE_RATE, rate)


@functools.cache
def _flite_voices(exe: str) -> frozenset[str]:
    out = subprocess.run([exe, "-lv"], capture_output=True, text=True, check=False, timeout=30)
    return frozenset(out.stdout.partition(":")[2].split())


def resample(x: np.ndarray, src: int, dst: int, taps_per_side: int = 32,
             beta: float = 8.6) -> np.ndarray:
    """``x`` (1-D) from ``src`` Hz to ``dst`` Hz, band-limited; length ``ceil(len * dst/src)``."""
    if src == dst:
        return x.astype(np.float32, copy=True)
    ratio = Fraction(dst, src)
    up, down = ratio.numerator, ratio.denominator
    cutoff = 0.95 * min(1.0, dst / src)  # in units of the input's Nyquist
    k = np.arange(-taps_per_side, taps_per_side + 1)
    # one filter per phase p: output n sits at input time floor + p/up, p = (n*down) % up
    t = k[None, :] - np.arange(up)[:, None] / up
    h = cutoff * np.sinc(cutoff * t) * np.kaiser(2 * taps_per_side + 1, beta)[None, :]
    h /= h.sum(axis=1, keepdims=True)  # unit gain at DC for every phase
    padded = np.concatenate([np.zeros(taps_per_side), x.astype(np.float64),
                             np.zeros(taps_per_side + 1)])
    n = np.arange(-(-len(x) * up // down))
    floor, phase = (n * down) // up, (n * down) % up
    y = np.einsum("nk,nk->n", padded[floor[:, None] + taps_per_side + k[None, :]], h[phase])
    return y.astype(np.float32)
