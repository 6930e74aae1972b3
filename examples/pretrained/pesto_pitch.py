"""PESTO pitch estimation (pesto-pitch 2.0.1, weights ``mir-1k_g7`` shipped in its wheel), streamed.

PESTO's own streaming mode (``pesto.load_model(..., streaming=True)``) keeps a cache of the last
``kernel_width - hop`` samples in front of its CQT convolution and emits one frame per ``hop``
samples; everything after the CQT works frame by frame (the vendor puts time on the batch axis).
``PestoPitch`` below is the same computation written over a whole signal ``[B, 1, T]``: a
left-padded strided conv (the CQT), then per frame (frames on axis 1, never merged with the batch)
the log magnitude, energy, voicing confidence, and the encoder, whose convolutions over frequency
become zero padding + ``unfold`` along frequency + one matmul.  It reuses the vendor's tensors (CQT
kernels, encoder and classifier weights, pitch shift) as loaded by ``pesto.loader.load_model``;
nothing is downloaded.  ``sw.convert`` streams it: its state is the CQT's 7712-sample history.

Output ``[B, 3 + 384, N]``: row 0 the pitch in semitones (``alwa`` reduction), row 1 the voicing
confidence, row 2 the volume, rows 3.. the 384 pitch activations (1/3 semitone bins).

Run: python examples/pretrained/pesto_pitch.py
"""

from __future__ import annotations

import copy
import glob
import math
import sys
import time
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHECKPOINT = "mir-1k_g7"
RATE = 48000
STEP_MS = 10.0
ALSA_WAVS = "/usr/share/sounds/alsa/*.wav"


def vendor_loader() -> Callable[..., nn.Module]:
    """``pesto.loader.load_model``; raises ImportError when pesto-pitch or omegaconf is missing.

    pesto 2.0.1 imports ``torchaudio`` at the top of ``pesto/core.py`` but uses it only to read
    files in ``predict_from_files``; torchaudio has no build for the CPU torch 2.13, so while pesto
    is imported an empty placeholder stands in for it (and is removed again right after).  Its
    checkpoints are pickles that name omegaconf classes, hence that import.
    """
    import omegaconf  # noqa: F401

    placeholder = None
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        placeholder = sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        from pesto.loader import load_model
    finally:
        if placeholder is not None and sys.modules.get("torchaudio") is placeholder:
            del sys.modules["torchaudio"]
    return load_model


def load_vendor(streaming: bool, *, rate: int = RATE, step_ms: float = STEP_MS,
                max_batch_size: int = 1) -> nn.Module:
    """PESTO's own model (streaming mode or offline), from the checkpoint in its wheel."""
    load_model = vendor_loader()
    if streaming:
        return load_model(CHECKPOINT, step_size=step_ms, sampling_rate=rate, streaming=True,
                          max_batch_size=max_batch_size)
    return load_model(CHECKPOINT, step_size=step_ms, sampling_rate=rate)


class FreqConv(nn.Module):
    """The vendor's ``Conv1d`` over frequency (it runs on ``[frames, C, F]``), applied to every
    frame of ``[B, N, C, F]``: zero padding and ``unfold`` along frequency, then one matmul, all
    per frame, so the frames never merge with the batch axis."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1,) or conv.padding_mode != "zeros":
            raise ValueError("only plain convolutions (no groups, dilation, padding mode)")
        self.kernel, self.stride, self.pad = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        self.weight = nn.Parameter(conv.weight.detach().flatten(1).clone())  # [Cout, C * K]
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        cols = F.pad(x, (self.pad, self.pad)).unfold(-1, self.kernel, self.stride)
        cols = cols.transpose(-3, -2).flatten(-2)  # [B, N, F_out, C * K]
        return F.linear(cols, self.weight, self.bias).transpose(-1, -2)  # [B, N, Cout, F_out]


class PestoPitch(nn.Module):
    """PESTO's streaming mode over a whole mono signal: ``[B, 1, T] -> [B, 387, T // hop]``."""

    def __init__(self, vendor: nn.Module) -> None:
        super().__init__()
        cqt = vendor.preprocessor.hcqt_kernels.cqt_kernels
        if len(cqt) != 1:
            raise ValueError("only single-harmonic checkpoints are supported")
        cqt = cqt[0]
        enc, conf = vendor.encoder, vendor.confidence
        self.hop, self.width, self.n_bins = cqt.hop_length, cqt.kernel_width, cqt.n_bins
        self.register_buffer("cqt_weight", cqt.conv.weight.detach().clone())  # [2 * bins, 1, K]
        self.register_buffer("sqrt_lengths", cqt.sqrt_lengths.detach().clone())  # [bins, 1]
        self.eps = torch.finfo(torch.float32).eps
        self.crop = (vendor.crop_cqt.max_steps, vendor.crop_cqt.min_steps)
        self.bps = vendor.bins_per_semitone
        self.roll = -round(float(vendor.shift) * self.bps)
        self.n_out = enc.hparams["output_dim"]
        self.register_buffer("offsets", torch.arange(1 - self.bps, self.bps))
        self.layernorm = copy.deepcopy(enc.layernorm)  # over [1, 219]: channel and frequency
        self.prefilt = nn.ModuleList(FreqConv(c) for c in
                                     [enc.conv1[0]] + [layer[0] for layer in enc.prefilt_layers])
        self.residual = enc.residual
        self.mix = nn.ModuleList(FreqConv(c) for c in enc.conv_layers if isinstance(c, nn.Conv1d))
        self.slope = enc.conv1[1].negative_slope
        # the "ToeplitzLinear" layer, a 1-channel conv over the C * 219 bins whose padding makes
        # every output see every input, as the dense matrix it is: [C * 219, 384]
        w, pad = enc.fc.weight.detach()[0, 0], enc.fc.padding[0]
        n_in = w.numel() - pad
        taps = torch.arange(n_in)[:, None] - torch.arange(pad + 1)[None, :] + pad
        self.register_buffer("toeplitz", w[taps].contiguous())
        self.conf_conv = FreqConv(conf.conv)
        self.conf_linear = copy.deepcopy(conf.linear)

    def forward(self, audio: Tensor) -> Tensor:
        act = self.slope
        # causal CQT: the vendor's cache holds width - hop zeros at the start
        x = F.pad(audio, (self.width - self.hop, 0))
        cqt = F.conv1d(x, self.cqt_weight, stride=self.hop)  # [B, 2 * bins, N]
        cqt = cqt.unflatten(1, (2, self.n_bins)) * self.sqrt_lengths
        # from here on everything is per frame: frames on axis 1, then the vendor's [C, F]
        mag = torch.hypot(cqt[:, 0], cqt[:, 1]).transpose(1, 2).unsqueeze(2)  # [B, N, 1, bins]
        db = mag.clamp(min=self.eps).log10().mul(20)
        logpow = db.mul(math.log(10) / 10.0)  # the vendor's in-place mul_ feeds the encoder too
        energy = logpow.exp().squeeze(2)  # [B, N, bins]
        vol = energy.sum(dim=-1)  # [B, N]

        # voicing confidence from the energy spectrum of each frame
        geo = energy.log().mean(dim=-1, keepdim=True).exp()
        arith = energy.mean(dim=-1, keepdim=True).clamp(min=1e-8)
        c = F.relu(self.conf_conv(energy.unsqueeze(2)).squeeze(2))  # [B, N, 71]
        c = torch.cat((c, geo / arith), dim=-1)  # [B, N, 72]
        confidence = torch.sigmoid(self.conf_linear(c)).squeeze(-1)  # [B, N]

        # encoder on the cropped log-power spectrum
        h = self.layernorm(logpow[..., self.crop[0] : self.n_bins + self.crop[1]])  # [B,N,1,219]
        h = F.leaky_relu(self.prefilt[0](h), act)  # [B, N, 40, 219]
        for conv in self.prefilt[1:]:
            y = F.leaky_relu(conv(h), act)
            h = y + h if self.residual else y
        for conv in self.mix:
            h = F.leaky_relu(conv(h), act)
        logits = h.flatten(2) @ self.toeplitz  # [B, N, 384]; channel-major as the vendor's
        activations = logits.softmax(dim=-1).roll(self.roll, dims=-1)

        # "alwa": weighted average of the pitches around the argmax
        center = activations.argmax(dim=-1, keepdim=True)  # [B, N, 1]
        idx = (center + self.offsets).clamp(0, self.n_out - 1)  # [B, N, 2 * bps - 1]
        w = activations.gather(-1, idx)
        pitch = (w * (idx.float() / self.bps)).sum(dim=-1) / w.sum(dim=-1)
        rows = (pitch.unsqueeze(-1), confidence.unsqueeze(-1), vol.unsqueeze(-1), activations)
        return torch.cat(rows, dim=-1).transpose(1, 2)  # [B, 387, N]


def build_model() -> PestoPitch:
    return PestoPitch(load_vendor(streaming=False)).eval()


def vendor_rows(pitch: Tensor, conf: Tensor, vol: Tensor, act: Tensor) -> Tensor:
    """What PESTO returns for ``[B, samples]`` as ``[B, 387, frames]``, laid out as ``PestoPitch``'s
    output."""
    return torch.cat((torch.stack((pitch, conf, vol), 1), act.transpose(1, 2)), 1)


def vendor_stream(audio: Tensor, chunk: int, vendor: nn.Module | None = None) -> Tensor:
    """PESTO's own streaming mode (a fresh one unless ``vendor`` is given) on ``audio`` ``[T]`` in
    chunks of ``chunk`` samples (a multiple of the hop): ``[387, T // hop]``."""
    if vendor is None:
        vendor = load_vendor(streaming=True)
    with torch.inference_mode():
        rows = [vendor_rows(*vendor(audio[None, i : i + chunk], return_activations=True))
                for i in range(0, audio.shape[-1] - chunk + 1, chunk)]
    return torch.cat(rows, -1)[0]


def alsa_audio(names: list[str] | None = None) -> Tensor:
    """The Debian alsa-utils channel announcements (48 kHz speech; all but Noise.wav unless
    ``names`` picks some), mono, one after another."""
    from streamwise.assets import load_wav

    parts = []
    for path in sorted(glob.glob(ALSA_WAVS)):
        name = path.rsplit("/", 1)[-1]
        wanted = name != "Noise.wav" if names is None else name in names
        if not wanted:
            continue
        wav, rate = load_wav(path)
        if rate != RATE:
            raise ValueError(f"{path}: {rate} Hz, expected {RATE}")
        parts.append(wav.mean(0))
    if not parts:
        raise FileNotFoundError(ALSA_WAVS)
    return torch.cat(parts)


def compare(ours: Tensor, theirs: Tensor) -> dict[str, float]:
    """Max errors per output row group; the pitch only where both pick the same argmax bin."""
    a_ours, a_theirs = ours[3:], theirs[3:]
    same = a_ours.argmax(0) == a_theirs.argmax(0)
    return {
        "pitch": float((ours[0] - theirs[0])[same].abs().max()),
        "argmax_flips": int((~same).sum()),
        "confidence": float((ours[1] - theirs[1]).abs().max()),
        "volume_rel": float(((ours[2] - theirs[2]).abs() / theirs[2].abs().clamp(min=1e-12)).max()),
        "activations": float((a_ours - a_theirs).abs().max()),
    }


def main() -> None:
    import streamwise as sw

    audio = alsa_audio()
    model = build_model()
    hop = model.hop
    audio = audio[: audio.shape[-1] // hop * hop]
    reference = vendor_stream(audio, hop)
    with torch.inference_mode():
        offline = model(audio[None, None])[0]
    print(f"audio: {audio.shape[-1] / RATE:.2f} s at {RATE} Hz, {reference.shape[-1]} frames")
    print("offline rebuild vs PESTO streaming mode:", compare(offline, reference))

    s = sw.convert(build_model(), audio[None, None, : 20 * hop], sample_rate=RATE)
    print(s.report)
    # both streams advance in the same loop, one 10 ms chunk at a time, so that load on the machine
    # weighs on both timings alike
    handle, vendor = s.stream(batch_size=1), load_vendor(streaming=True)
    ours, theirs, ours_s, theirs_s = [], [], 0.0, 0.0
    with torch.inference_mode():
        for i in range(0, audio.shape[-1], hop):
            chunk = audio[None, None, i : i + hop]
            t0 = time.perf_counter()
            ours.append(handle.push(chunk))
            t1 = time.perf_counter()
            out = vendor(chunk[0], return_activations=True)
            t2 = time.perf_counter()
            theirs.append(vendor_rows(*out))
            ours_s, theirs_s = ours_s + t1 - t0, theirs_s + t2 - t1
        ours.append(handle.close())
    streamed, vendor_out = torch.cat(ours, -1)[0], torch.cat(theirs, -1)[0]
    assert streamed.shape == vendor_out.shape == reference.shape
    err = compare(streamed, vendor_out)
    print("streamed vs PESTO streaming mode:", err)
    r = s.report
    print(f"PESTO mir-1k_g7 @ {RATE} Hz, {hop}-sample chunks: latency {r.latency_frames:g} samples "
          f"({1e3 * r.latency_frames / RATE:.2f} ms), state {r.state_bytes} bytes, max error "
          f"activations {err['activations']:.1e} / pitch {err['pitch']:.1e} semitones, "
          f"speed {theirs_s / ours_s:.2f}x PESTO's streaming mode ({1e3 * ours_s / len(theirs):.2f}"
          f" vs {1e3 * theirs_s / len(theirs):.2f} ms per chunk)")


if __name__ == "__main__":
    main()
