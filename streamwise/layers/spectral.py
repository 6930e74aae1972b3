"""Streaming ``STFT`` and ``MelSpectrogram``: frames on the absolute clock, equal to ``torch.stft``.

Frame ``o`` reads samples ``[o*hop - pad, o*hop - pad + n_fft)`` with ``pad = n_fft // 2`` when
``center`` (as ``torch.stft``), else 0: the sliding window of ``layers/window.py``, so any
chunking gives the offline frames.  ``pad_mode="constant"`` pads with zeros; ``"reflect"``
(torch's default) mirrors the first and last samples without repeating the edge, so frame 0
waits for sample ``pad`` (one more than its window) and ``flush`` mirrors the last ``pad + 1``
samples, kept for it.  A stream of ``pad`` samples or fewer cannot be reflected (torch refuses
too) and ``flush`` says so.

Inputs ``[B, C, T]``; outputs ``[B, C * F, frames]`` (``F = n_fft // 2 + 1`` bins, or the
``n_mels`` bands), channel-major: ``[B, F, frames]`` for mono, as ``torch.stft`` on ``[B, T]``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from streamwise.core.protocol import empty_output
from streamwise.core.state import Spec, tensor
from streamwise.layers.window import TimeWindow


class STFT(TimeWindow):
    """``torch.stft`` as a stream: ``power`` None (complex), 1 (magnitude) or 2 (power)."""

    in_ndim = 3
    window: Tensor

    def __init__(self, n_fft: int, hop_length: int | None = None, win_length: int | None = None,
                 window: str | Tensor = "hann", center: bool = True, pad_mode: str = "reflect",
                 normalized: bool = False, onesided: bool = True, power: float | None = None
                 ) -> None:
        super().__init__()
        hop = n_fft // 4 if hop_length is None else hop_length
        win = n_fft if win_length is None else win_length
        if n_fft < 2 or not 1 <= win <= n_fft or hop < 1:
            raise ValueError(f"STFT needs n_fft >= 2, 1 <= win_length <= n_fft, hop >= 1; got "
                             f"n_fft={n_fft}, win_length={win}, hop_length={hop}")
        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', got {pad_mode!r}")
        if power not in (None, 1, 2, 1.0, 2.0):
            raise ValueError(f"power must be None (complex), 1 or 2, got {power}")
        self.n_fft, self.hop_length, self.win_length = n_fft, hop, win
        self.center, self.pad_mode = center, pad_mode
        self.normalized, self.onesided, self.power = normalized, onesided, power
        self._hann = isinstance(window, str)  # made in the input's dtype (exact in float64)
        if isinstance(window, str):
            if window != "hann":
                raise ValueError(f"window must be 'hann' or a tensor, got {window!r}")
            window = torch.hann_window(win)
        if window.shape != (win,):
            raise ValueError(f"window must have win_length={win} samples, got {window.shape}")
        self.register_buffer("window", window.clone())
        self._pad = n_fft // 2 if center else 0
        self._reflect = center and pad_mode == "reflect"
        self._setup_window(n_fft, hop, self._pad, self._pad)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1 if self.onesided else self.n_fft

    def channels_out(self, in_channels: int | None) -> int | None:
        return None if in_channels is None else in_channels * self.bins

    def extra_repr(self) -> str:
        return (f"n_fft={self.n_fft}, hop_length={self.hop_length}, "
                f"win_length={self.win_length}, center={self.center}, pad_mode={self.pad_mode}, "
                f"power={self.power}")

    # -- the transform --------------------------------------------------------------------------
    def _stft(self, x: Tensor, center: bool) -> Tensor:
        b, c, t = x.shape
        window = (torch.hann_window(self.win_length, dtype=x.dtype, device=x.device)
                  if self._hann else self.window.to(x.dtype))
        spec = torch.stft(x.reshape(b * c, t), self.n_fft, self.hop_length, self.win_length,
                          window, center=center, pad_mode=self.pad_mode,
                          normalized=self.normalized, onesided=self.onesided,
                          return_complex=True)
        out = self._post(spec)
        return out.reshape(b, c * out.shape[1], out.shape[2])

    def _post(self, spec: Tensor) -> Tensor:
        """``[N, F, frames]`` complex -> what this layer emits per frame."""
        if self.power is None:
            return spec
        mag2 = spec.real.square() + spec.imag.square()
        return mag2 if self.power == 2 else mag2.sqrt()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] + 2 * self._pad < self.n_fft and not self._reflect:
            return self._empty_out(x)  # no whole frame yet (torch.stft refuses; a stream waits)
        return self._stft(x, self.center)

    def _window_op(self, window: Tensor, m: int) -> Tensor:
        return self._stft(window, center=False)[..., :m]

    def _empty_out(self, x: Tensor) -> Tensor:
        dtype = x.dtype if self.power is not None else (torch.complex128 if x.dtype ==
                                                       torch.float64 else torch.complex64)
        return x.new_empty((x.shape[0], x.shape[1] * self._bands(), 0), dtype=dtype)

    def _bands(self) -> int:
        return self.bins

    # -- reflect padding ------------------------------------------------------------------------
    def state_spec(self, in_channels: int | None = None) -> Spec:
        spec = dict(super().state_spec(in_channels))
        if self._reflect:  # samples before frame 0 can be mirrored; the last ones, for flush
            spec["head"] = tensor("B", in_channels, self._pad, grows=-1, lazy=True)
            spec["last"] = tensor("B", in_channels, self._pad + 1, grows=-1, lazy=True)
        return spec

    def reset_rows(self, state: dict[str, Any], mask: Tensor, start: int) -> dict[str, Any]:
        if self._reflect:
            raise ValueError("STFT(pad_mode='reflect') cannot restart single rows (their mirror "
                             "would need samples from before the restart); use "
                             "pad_mode='constant' or a new stream")
        return super().reset_rows(state, mask, start)

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        if not self._reflect or x.shape[-1] == 0:
            return super().step(x, state)
        last = x if state["last"] is None else torch.cat([state["last"], x], -1)
        last = last[..., -(self._pad + 1):].clone()
        if state["buf"] is not None:
            y, new = super().step(x, state)
            return y, {**new, "head": None, "last": last}
        head = x if state["head"] is None else torch.cat([state["head"], x], -1)
        if head.shape[-1] <= self._pad:  # frame 0's mirror needs sample ``pad``: wait for it
            return self._empty_out(x), {**state, "head": head, "last": last}
        mirror = head[..., 1 : self._pad + 1].flip(-1)  # samples -pad .. -1
        y, new = super().step(head, {**state, "buf": mirror, "head": None})
        return y, {**new, "head": None, "last": last}

    def flush(self, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        if self._reflect and state["buf"] is None and state["head"] is not None:
            raise ValueError(f"STFT(pad_mode='reflect') needs more than n_fft // 2 = {self._pad} "
                             f"samples to mirror; the stream had {state['head'].shape[-1]} (torch"
                             ".stft refuses it too): use pad_mode='constant' for short streams")
        if self._reflect and state["buf"] is None:
            return empty_output(self, state), state
        return super().flush(state)

    def _mask_before_start(self, full: Tensor, full_start: int, start: Tensor) -> Tensor:
        if self._reflect:  # rows never restart here: frames before 0 are the mirror, kept
            return full
        return super()._mask_before_start(full, full_start, start)

    def _flush_tail(self, buf: Tensor, pad: int, state: dict[str, Any]) -> Tensor:
        if not self._reflect:
            return super()._flush_tail(buf, pad, state)
        return state["last"][..., -pad - 1 : -1].flip(-1)  # samples T .. T+pad-1 mirrored


def hz_to_mel(f: Tensor, htk: bool) -> Tensor:
    """Hz to mel: HTK's ``2595 log10(1 + f/700)`` or Slaney's (linear below 1 kHz, log above)."""
    if htk:
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    step, knee, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    return torch.where(f >= knee, knee / step + torch.log(f.clamp(min=knee) / knee) / logstep,
                       f / step)


def mel_to_hz(m: Tensor, htk: bool) -> Tensor:
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    step, knee, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    return torch.where(m >= knee / step, knee * torch.exp(logstep * (m - knee / step)), m * step)


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                f_max: float | None = None, htk: bool = False, norm: str | None = "slaney"
                ) -> Tensor:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (float64): each band rises from the
    centre of the band below to its own and falls to the centre of the one above; ``norm=
    "slaney"`` scales each to unit area per Hz (librosa's default)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    lo, hi = hz_to_mel(torch.tensor([f_min, f_max], dtype=torch.float64), htk)
    edges = mel_to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64), htk)
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    width = edges.diff()
    ramps = edges[:, None] - freqs[None, :]
    rise = -ramps[:-2] / width[:-1, None]
    fall = ramps[2:] / width[1:, None]
    fb = torch.clamp(torch.minimum(rise, fall), min=0.0)
    if norm == "slaney":
        fb = fb * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return fb


class MelSpectrogram(STFT):
    """A power (or magnitude) STFT through mel filters, optionally ``log(max(mel, eps))``."""

    mel_fb: Tensor

    def __init__(self, sample_rate: int = 16_000, n_fft: int = 400,
                 hop_length: int | None = None, win_length: int | None = None,
                 n_mels: int = 80, f_min: float = 0.0, f_max: float | None = None,
                 power: float = 2.0, center: bool = True, pad_mode: str = "reflect",
                 htk: bool = False, norm: str | None = "slaney", log: bool = False,
                 eps: float = 1e-10, window: str | Tensor = "hann") -> None:
        if power not in (1, 2, 1.0, 2.0):
            raise ValueError(f"MelSpectrogram power must be 1 or 2, got {power}")
        super().__init__(n_fft, hop_length, win_length, window, center, pad_mode, power=power)
        self.sample_rate, self.n_mels, self.log, self.eps = sample_rate, n_mels, log, eps
        fb = mel_filters(sample_rate, n_fft, n_mels, f_min, f_max, htk, norm)
        self.register_buffer("mel_fb", fb)  # float64; cast to the input's dtype per call

    def channels_out(self, in_channels: int | None) -> int | None:
        return None if in_channels is None else in_channels * self.n_mels

    def _bands(self) -> int:
        return self.n_mels

    def _post(self, spec: Tensor) -> Tensor:
        mel = torch.matmul(self.mel_fb.to(spec.real.dtype), super()._post(spec))
        return torch.log(mel.clamp(min=self.eps)) if self.log else mel

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_mels={self.n_mels}, log={self.log}, "
                + super().extra_repr())
