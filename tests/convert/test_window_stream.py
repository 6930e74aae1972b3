"""WindowStream: exact where the context is finite and known; measured error otherwise."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from streamwise.convert import WindowStream, find_context
from streamwise.core.verify import stream_chunks
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)


def _convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.ReLU(),
                         nn.Conv1d(8, 8, 3, padding=2, dilation=2), nn.Tanh(),
                         nn.Conv1d(8, 3, 3, padding=1)).double().eval()


class BiGRU(nn.Module):
    """A bidirectional recurrent net: every output depends on the whole sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(2, 4, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x.transpose(1, 2))[0].transpose(1, 2)


class MeanCentre(nn.Module):
    """Subtracts the mean over time: every output depends on every input frame."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(-1, keepdim=True)


def test_find_context_reads_the_receptive_field():
    assert find_context(_convnet(), 2) == (5, 5)  # 2 + 2 + 1 frames each side
    # a recurrent net's memory fades: the reach is finite at float64 precision, but long
    ctx = find_context(BiGRU().double(), 2)
    assert ctx is not None and min(ctx) > 20
    assert find_context(MeanCentre(), 2) is None  # per-sequence statistics: unbounded
    net = _convnet()
    find_context(net, 2)
    assert next(net.parameters()).dtype == torch.float64  # the caller's model is not touched


@given(data=st.data(), hop=st.integers(1, 9), extra=st.integers(0, 7), batch=st.integers(1, 2),
       length=st.integers(1, 90))
def test_streams_exactly_when_the_window_covers_the_context(data, hop, extra, batch, length):
    net = _convnet()
    ws = WindowStream(net, window=hop + 10 + extra, hop=hop, context=(5, 5))
    x = torch.randn(batch, 2, length, dtype=torch.float64)
    sizes = data.draw(chunkings(length))
    assert_streams_like_offline(ws, x, sizes, rtol=1e-10)
    assert_state_keeps_its_declaration(ws, x, sizes, in_channels=2)


@pytest.mark.parametrize("net", [BiGRU().double(), MeanCentre()])
def test_unbounded_context_reports_the_error(net):
    ws = WindowStream(net, window=64, hop=16)
    x = torch.randn(1, 2, 300, dtype=torch.float64)
    err = ws.measure(x)
    assert 0 < err < 1.0 and not ws.exact


def test_align_hook_sees_the_overlap():
    net = _convnet()
    seen = []

    def align(prev, cur):
        seen.append((prev.shape[-1], cur.shape[-1]))
        return cur

    ws = WindowStream(net, window=30, hop=8, context=(5, 5), align=align)
    x = torch.randn(1, 2, 100, dtype=torch.float64)
    y, _ = stream_chunks(ws, x, [100])
    torch.testing.assert_close(y, net(x))
    assert seen and all(0 < p <= c for p, c in seen)


def test_bad_settings():
    with pytest.raises(ValueError, match="shorter than hop"):
        WindowStream(_convnet(), window=12, hop=4, context=(5, 5))
    with pytest.raises(ValueError, match="hop <= window"):
        WindowStream(_convnet(), window=4, hop=8)
    with pytest.raises(ValueError, match="one output frame per input frame"):
        find_context(nn.Conv1d(2, 2, 4, stride=2), 2)


class FirstFramesDepth(nn.Module):
    """A 'depth' model in the units of its input's first frames, per layer (channel 0 near,
    channel 1 far, ten times as deep): every window has its own scales, the offline output the
    stream's."""

    def forward(self, x):
        ref = x[..., :8].mean(-1, keepdim=True)
        return x / ref * torch.tensor([1.0, 10.0], dtype=x.dtype).view(1, 2, 1)


def _two_layer_scene(length, batch=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float64)
    rows = []
    for b in range(batch):  # near and far drift apart, differently in every row
        near = 0.7 + 0.3 * torch.sin(t / (40 + 7 * b)) + 0.02 * torch.rand(
            length, generator=gen, dtype=torch.float64)
        far = 6 + 2 * torch.cos(t / (55 + 5 * b)) + 0.1 * torch.rand(
            length, generator=gen, dtype=torch.float64)
        rows.append(torch.stack([near, far]))
    return torch.stack(rows)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), batch=st.integers(1, 2), length=st.integers(60, 200))
def test_layer_wise_scale_alignment_recovers_the_offline_scales(data, batch, length):
    from streamwise.convert.scale_align import ScaleAlign

    x = _two_layer_scene(length, batch)
    ws = WindowStream(FirstFramesDepth(), window=48, hop=16, context=(16, 0),
                      align=ScaleAlign(layers=2))
    assert_streams_like_offline(ws, x, data.draw(chunkings(length)), rtol=1e-10)


def test_scale_alignment_error_without_with_global_and_layer_wise():
    from streamwise.convert.scale_align import ScaleAlign

    x = _two_layer_scene(400)
    ref = FirstFramesDepth()(x)
    err = {}
    for name, align in [("none", None), ("global", ScaleAlign(1)), ("layers", ScaleAlign(2))]:
        ws = WindowStream(FirstFramesDepth(), window=48, hop=16, context=(16, 0), align=align)
        y, _ = stream_chunks(ws, x, [7] * 57 + [1])
        err[name] = float(((y - ref).abs() / ref).max())
    # drifting windows are far off; one scale per window cannot follow two layers; per layer can
    assert err["none"] > 0.3 and 0.01 < err["global"] < err["none"] and err["layers"] < 1e-12


def test_scale_align_refuses_bad_settings_and_shapes():
    from streamwise.convert.scale_align import ScaleAlign

    with pytest.raises(ValueError, match="layers as an integer >= 1"):
        ScaleAlign(0)
    with pytest.raises(ValueError, match="cover the first frames"):
        ScaleAlign(2)(torch.ones(1, 2, 9), torch.ones(1, 2, 5))
