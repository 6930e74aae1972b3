"""sw.convert on plain-torch architectures: exact under random chunkings, batches and lengths."""

from __future__ import annotations

import functools
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamwise as sw
from streamwise.core.verify import measured_delay
from tests.convert.architectures import architectures
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)

NAMES = sorted(architectures())


@functools.cache
def converted(name: str):
    model, x, time_dim, step = architectures()[name]
    return sw.convert(model, x, time_dim), x, time_dim, step


@pytest.mark.parametrize("name", NAMES)
def test_converts_and_verifies_itself(name):
    s, x, _, _ = converted(name)
    r = s.report
    assert r.verified and r.trials >= 3
    assert r.max_abs_error <= 1e-10 * max(r.output_scale, 1.0)
    assert r.ops and r.state_bytes > 0
    assert "algorithmic latency" in str(r) and "per stream" in str(r)


@pytest.mark.parametrize("name", NAMES)
@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_streams_like_offline(name, data):
    s, x, time_dim, step = converted(name)
    batch = data.draw(st.integers(1, 3))
    k = data.draw(st.integers(-1 if x.shape[time_dim] > 3 * step else 0, 3))
    shape = list(x.shape)
    shape[0], shape[time_dim] = batch, x.shape[time_dim] + k * step
    xb = torch.randn(*shape, dtype=torch.float64)
    sizes = data.draw(chunkings(shape[time_dim]))
    assert_streams_like_offline(s, xb, sizes)


@pytest.mark.parametrize("name", NAMES)
def test_measured_latency_matches_the_graph(name):
    """Pushing one frame at a time, no output comes later than the static delay says, and the
    static delay is tight to within the frame grid (sub-frame rates round it)."""
    s, x, time_dim, _ = converted(name)
    got = measured_delay(s, x[:1], frames=x.shape[time_dim])
    assert got <= float(s.delay) < got + 1
    if s.stride == 1 and name != "functional":
        assert got == float(s.delay)


def test_report_in_milliseconds_and_per_op_rows():
    model, x, _, _ = architectures()["seanet"]
    s = sw.convert(model, x, sample_rate=16000)
    text = str(s.report)
    assert f"{s.report.latency_frames / 16:.2f} ms at 16000 Hz" in text
    names = [r.node for r in s.report.ops]
    assert any("ConvTranspose1d" in r.op for r in s.report.ops) and "pad" in names
    assert sum(r.state_bytes for r in s.report.ops) >= s.report.state_bytes > 0
    assert s.report.receptive_field == s.receptive_field


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_one_frame_chunks_use_cells_and_equal_the_sequence(kind):
    """Chunks of one frame take torch's cell kernels; the result equals the whole-sequence RNN."""
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, kind)(3, 5, num_layers=2, batch_first=True)

        def forward(self, x):
            return self.rnn(x.transpose(1, 2))[0].transpose(1, 2)

    net = Net().double().eval()
    x = torch.randn(2, 3, 25, dtype=torch.float64)
    s = sw.convert(net, x)
    assert_streams_like_offline(s, x, [1] * 25)
    assert_streams_like_offline(s, x, [3, 1, 0, 1, 20])


def test_two_dimensional_input_without_channels():
    class M(torch.nn.Module):
        def forward(self, x):  # [B, T]
            return F.conv1d(F.pad(x.unsqueeze(1), (3, 0)), torch.ones(2, 1, 4).to(x), stride=2)

    x = torch.randn(2, 64, dtype=torch.float64)
    s = sw.convert(M(), x)
    assert s.stride == Fraction(1, 2) and s.delay == 0
    assert_streams_like_offline(s, x, [5, 0, 1, 30, 28])


def test_kernel_one_along_time_is_per_frame_wherever_time_is():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, (1, 5), padding=(0, 2))

        def forward(self, x):  # time on axis 2 of the conv's input, kernel 1 along it
            return self.conv(x.unsqueeze(-1).expand(-1, -1, -1, 8)).mean(-1)

    x = torch.randn(1, 1, 32, dtype=torch.float64)
    s = sw.convert(M().double(), x)
    assert all(r.how == "per frame" for r in s.report.ops)
    assert_streams_like_offline(s, x, [1, 0, 9, 22])


class LiveWeights(torch.nn.Module):
    """A functional conv with a normalised kernel and a fixed basis buffer: static subgraphs."""

    def __init__(self) -> None:
        super().__init__()
        self.v = torch.nn.Parameter(torch.randn(3, 2, 3))
        self.register_buffer("basis", torch.randn(3, 3))

    def forward(self, x):
        w = self.v / self.v.norm(dim=(1, 2), keepdim=True)
        h = F.conv1d(x, w, padding=1)
        return torch.einsum("bct,cd->bdt", h, self.basis)


def test_cast_update_and_copy_reach_the_stream():
    """Weights are read live: .double(), an in-place update and a deep copy all stream right."""
    import copy

    torch.manual_seed(0)
    model = LiveWeights()
    s = sw.convert(model, torch.randn(1, 2, 20))
    x = torch.randn(2, 2, 30, dtype=torch.float64)
    s.double()  # parameters are shared with the model and cast in place; buffers are the graph's
    model.double()
    assert_streams_like_offline(s, x, [4, 0, 1, 25])
    torch.testing.assert_close(s(x), model(x), atol=1e-12, rtol=0)
    with torch.no_grad():
        model.v.mul_(-3.0)  # training updates the parameter in place: the kernel follows
    torch.testing.assert_close(stream_chunks_out(s, x), model(x), atol=1e-10, rtol=0)
    twin = copy.deepcopy(s)
    with torch.no_grad():
        model.v.zero_()  # the copy has its own weights
    torch.testing.assert_close(stream_chunks_out(twin, x), twin(x), atol=1e-10, rtol=0)
    assert float(twin(x).detach().abs().max()) > 0


def stream_chunks_out(s, x):
    from streamwise.core.verify import stream_chunks

    return stream_chunks(s, x, [7, 0, 23])[0]


@pytest.mark.parametrize("name", ["crnn", "demucs_unet", "conformer_block"])
def test_snapshot_and_restore_mid_stream(name):
    s, x, time_dim, _ = converted(name)
    cut = x.shape[time_dim] // 3
    h = s.stream(x.shape[0], dtype=x.dtype)
    first = h.push(x.narrow(time_dim, 0, cut))
    back = sw.Stream.restore(s, h.snapshot())
    rest = back.push(x.narrow(time_dim, cut, x.shape[time_dim] - cut))
    y = torch.cat([first, rest, back.close()], s.out_time_axis)
    torch.testing.assert_close(y, s(x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@settings(deadline=None, max_examples=5, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_state_keeps_its_declaration(name, data):
    """Every state of a converted stream, fresh and after each chunk, is what ``state_spec``
    declares (leaf paths, ranks, batch sizes, dtypes, clocks as ints)."""
    s, x, time_dim, _ = converted(name)
    shape = list(x.shape)
    shape[0] = data.draw(st.integers(1, 3))
    xb = torch.randn(*shape, dtype=torch.float64)
    assert_state_keeps_its_declaration(s, xb, data.draw(chunkings(shape[time_dim])))
