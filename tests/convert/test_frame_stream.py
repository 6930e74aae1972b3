"""FrameStream: a per-frame model (frames normalised, then a network) streamed exactly."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from streamwise.convert import FrameStream
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)


class FrameNet(nn.Module):
    """Normalises each frame (as CREPE does), then a conv + linear head: ``[M, 1, L] -> [M, 5]``."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 3, 5, stride=2)
        self.head = nn.Linear(3 * ((length - 5) // 2 + 1), 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-3)
        return self.head(torch.tanh(self.conv(x)).flatten(1))


def _reference(model: nn.Module, x: torch.Tensor, length: int, hop: int, center: bool):
    """Frames cut by hand, one model call per frame."""
    pad = length // 2 if center else 0
    xp = torch.nn.functional.pad(x, (pad, pad))
    outs = [model(xp[..., s : s + length]) for s in range(0, xp.shape[-1] - length + 1, hop)]
    return torch.stack(outs, -1)


@settings(deadline=None, max_examples=40)
@given(data=st.data(), length=st.integers(5, 24), hop=st.integers(1, 9), t=st.integers(0, 70),
       batch=st.integers(1, 3), center=st.booleans())
def test_frames_stream_like_offline(data, length, hop, t, batch, center):
    torch.manual_seed(0)
    net = FrameNet(length).double()
    fs = FrameStream(net, length, hop, center=center)
    x = torch.randn(batch, 1, t, dtype=torch.float64)
    if (t + (2 * (length // 2) if center else 0)) >= length:
        ref = _reference(net, x, length, hop, center)
        assert torch.allclose(fs(x), ref, atol=1e-12)
    sizes = data.draw(chunkings(t))
    assert_streams_like_offline(fs, x, sizes)
    assert_state_keeps_its_declaration(fs, x, sizes, in_channels=1)


def test_metadata_and_bad_settings():
    fs = FrameStream(nn.Identity(), 1024, 160)
    assert fs.stride == pytest.approx(1 / 160) and fs.receptive_field == 1024
    assert fs.delay == 1024 - 1 - 512
    with pytest.raises(ValueError, match="hop"):
        FrameStream(nn.Identity(), 16, 0)
