"""Overlap-add heads (issue 15): ``torch.istft`` recorded as the ops it is made of, ``F.fold`` as
an overlap-add and ``x.squeeze()`` of unit axes, each streaming like the offline model under
random chunkings (batch 2, float64, chunk sizes 0 and 1); settings outside the decomposition
are refused, never approximated."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from streamwise.convert import ConversionError
from tests.strategies import assert_streams_like_offline, chunkings


class ISTFTHead(nn.Module):
    """A vocoder head: channels to magnitude and phase, then ``torch.istft``."""

    def __init__(self, n_fft: int, hop: int, win: int | None, center: bool = True,
                 window: bool = True) -> None:
        super().__init__()
        self.n_fft, self.hop, self.win, self.center = n_fft, hop, win, center
        self.proj = nn.Conv1d(4, n_fft + 2, 3, padding=1)
        self.register_buffer("window", torch.hann_window(win or n_fft) if window else None)

    def forward(self, x):
        mag, phase = self.proj(x).chunk(2, dim=1)
        spec = torch.exp(mag.clamp(max=3)) * torch.exp(1j * phase)
        return torch.istft(spec, self.n_fft, self.hop, self.win, self.window, center=self.center)


class FoldHead(nn.Module):
    """Overlap-add written with ``F.fold`` and a squeezed envelope (Vocos's 'same' padding)."""

    def __init__(self, k: int = 8, hop: int = 2) -> None:
        super().__init__()
        self.k, self.hop = k, hop
        self.proj = nn.Conv1d(4, k, 1)
        self.register_buffer("window", torch.hann_window(k) + 0.1)

    def forward(self, x):
        frames = self.proj(x) * self.window[None, :, None]
        t = frames.shape[-1]
        size = (t - 1) * self.hop + self.k
        y = F.fold(frames, (1, size), (1, self.k), stride=(1, self.hop))[:, 0, 0, 3:-3]
        env = F.fold(self.window.square().expand(1, t, -1).transpose(1, 2), (1, size),
                     (1, self.k), stride=(1, self.hop)).squeeze()[3:-3]
        return y / env


MODELS = {
    "istft centred": lambda: ISTFTHead(16, 4, None),
    "istft, shorter window": lambda: ISTFTHead(16, 4, 12),
    "istft, not centred, no window given": lambda: ISTFTHead(8, 2, None, center=False,
                                                             window=False),
    "fold and squeeze": lambda: FoldHead(),
}


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_overlap_add_heads_stream_like_offline(name, data):
    torch.manual_seed(0)
    model = MODELS[name]().double().eval()
    s = sw.convert(model, torch.randn(1, 4, 20, dtype=torch.float64))
    length = data.draw(st.integers(4, 40))
    x = torch.randn(2, 4, length, dtype=torch.float64)
    assert_streams_like_offline(s, x, data.draw(chunkings(length)))


def test_istft_decomposition_equals_torch():
    """The recorded ops give torch.istft's own numbers (the converter's verification aside)."""
    from streamwise.convert.decompose import istft

    torch.manual_seed(1)
    spec = torch.randn(2, 9, 30, dtype=torch.complex128)
    for win, center in ((None, True), (12, True), (16, False)):
        window = torch.hann_window(win or 16, dtype=torch.float64) + 0.05
        want = torch.istft(spec, 16, 4, win, window, center=center)
        got = istft(spec, 16, 4, win, window, center=center)
        assert torch.allclose(got, want, atol=1e-12), (win, center)
    for win in (None, 12):  # no window: ones over win_length, zero-padded to n_fft
        want = torch.istft(spec, 16, 4, win, center=True)
        assert torch.allclose(istft(spec, 16, 4, win), want, atol=1e-12), win


def test_istft_to_a_requested_length_is_refused():
    class ToLength(ISTFTHead):
        def forward(self, x):
            mag, phase = self.proj(x).chunk(2, dim=1)
            spec = torch.exp(mag.clamp(max=3)) * torch.exp(1j * phase)
            return torch.istft(spec, self.n_fft, self.hop, window=self.window,
                               length=4 * x.shape[-1])

    with pytest.raises(ConversionError, match="istft"):
        sw.convert(ToLength(16, 4, None).eval(), torch.randn(1, 4, 20))
