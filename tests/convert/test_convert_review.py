"""Regressions from the adversarial review: each case once gave a wrong stream, a crash or a
wrong number; now it streams exactly or is refused with the right reason."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from streamwise.convert import ConversionError
from streamwise.core.verify import measured_delay
from tests.strategies import assert_streams_like_offline, chunkings


def _exact(model: nn.Module, x: torch.Tensor, sizes: list[int], time_dim: int = -1) -> None:
    s = sw.convert(model, x, time_dim)
    assert_streams_like_offline(s, x, sizes)


class Guard(nn.Module):
    def forward(self, x):
        return x * (x.abs() > 100).any().logical_not()


class PadTo4(nn.Module):
    def forward(self, x):
        return F.pad(x, (0, (-x.shape[-1]) % 4))


class ShortSoftmax(nn.Module):
    """A softmax over time after a stride-8 conv: one frame long in an 8-sample example."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(4, 4, 8, stride=8)

    def forward(self, x):
        return torch.softmax(self.c(x), dim=-1)


@pytest.mark.parametrize(("model", "length", "match"), [
    (Guard(), 40, "reduces over time"),              # a whole-input flag is not a constant
    (ShortSoftmax(), 8, "normalizes over time"),     # probed on the longer run, not 1 frame
])
def test_refused_instead_of_silently_wrong(model, length, match):
    with pytest.raises(ConversionError, match=match):
        sw.convert(model, torch.randn(1, 4, length))


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_a_right_pad_computed_from_the_length_is_worked_out_at_the_end(data):
    """Refused before issue 15 ("amount computed from the input's size"): a right pad to a
    multiple of 4 happens at close, from the stream's total length."""
    s = sw.convert(PadTo4().double(), torch.randn(1, 4, 41, dtype=torch.float64))
    length = data.draw(st.integers(1, 60))
    x = torch.randn(2, 4, length, dtype=torch.float64)
    assert_streams_like_offline(s, x, data.draw(chunkings(length)))


class SizeFromInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(4, 8, 3, padding=1)
        self.d = nn.Conv2d(2, 2, (1, 3), padding=(0, 1))

    def forward(self, x):
        b, _, t = x.shape
        return self.d(self.c(x).reshape(b, 2, 4, t))


class ExpandToT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", torch.randn(1, 4, 1))

    def forward(self, x):
        return x * self.w.expand(-1, -1, x.shape[-1])


class H0FromBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(4, 6, batch_first=True)

    def forward(self, x):
        h0 = torch.zeros(1, x.size(0), 6, dtype=x.dtype)
        return self.rnn(x.transpose(1, 2), h0)[0].transpose(1, 2)


class NewAxisCrop(nn.Module):
    def forward(self, x):
        return x[:, None, :, 1:]


@pytest.mark.parametrize("model", [SizeFromInput(), ExpandToT(), H0FromBatch(), NewAxisCrop()],
                         ids=lambda m: type(m).__name__)
def test_sizes_from_the_input_stream_exactly(model):
    x = torch.randn(2, 4, 30, dtype=torch.float64)
    _exact(model.double(), x, [0, 1, 7, 0, 22])
    _exact(model.double(), x, [1] * 30)


def test_nonzero_initial_state_is_refused():
    class H0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 6, batch_first=True)
            self.h0 = nn.Parameter(torch.ones(1, 1, 6))

        def forward(self, x):
            h0 = self.h0.expand(-1, x.shape[0], -1).contiguous()
            return self.rnn(x.transpose(1, 2), h0)[0].transpose(1, 2)

    with pytest.raises(ConversionError, match="nonzero hidden state"):
        sw.convert(H0(), torch.randn(1, 4, 20))


def test_token_ids_through_embedding_and_conv():
    torch.manual_seed(0)

    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.e = nn.Embedding(10, 3)
            self.c = nn.Conv1d(3, 3, 3, padding=1)

        def forward(self, x):  # [B, T] int64 -> [B, 3, T]
            return self.c(self.e(x).transpose(1, 2))

    x = torch.randint(0, 10, (2, 25))
    s = sw.convert(Tokens(), x)
    assert_streams_like_offline(s, x, [0, 3, 0, 1, 21])


def test_reflect_padding_reports_its_start_up_lag():
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv1d(4, 4, 3)

        def forward(self, x):
            return self.c(F.pad(x, (8, 8), mode="reflect"))

    x = torch.randn(1, 4, 100)
    s = sw.convert(M(), x)
    assert s.report.latency_frames == measured_delay(s, x) == 8


def test_pool_arguments_by_position_and_unstreamable_pool_options():
    class Avg(nn.Module):
        def forward(self, x):
            return F.avg_pool1d(x, 3, 2, 1, False, False)  # count_include_pad=False, by position

    with pytest.raises(ConversionError, match="count_include_pad"):
        sw.convert(Avg(), torch.randn(1, 2, 20))

    class Idx(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = nn.MaxPool1d(2, return_indices=True)

        def forward(self, x):
            return self.p(x)[0]

    with pytest.raises(ConversionError, match="return_indices=False"):
        sw.convert(Idx(), torch.randn(1, 2, 20))


def test_two_inputs_and_factory_sizes_get_clear_errors():
    class Two(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(ConversionError, match="takes 2 inputs"):
        sw.convert(Two(), torch.randn(1, 2, 10))

    class Zeros(nn.Module):
        def forward(self, x):
            return x + torch.zeros(x.shape[0], 1, 1)

    with pytest.raises(ConversionError, match=r"x.new_zeros"):
        sw.convert(Zeros(), torch.randn(1, 2, 10))


def test_stream_closed_without_input_keeps_the_channel_count():
    s = sw.convert(nn.Conv1d(2, 5, 3, padding=1), torch.randn(1, 2, 10))
    assert s.stream(1).close().shape == (1, 5, 0)


class BatchConst(nn.Module):
    def forward(self, x):
        return x * x.new_full((1, 1, 1), x.shape[0])


class BatchOnlyAfterValidConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(4, 8, 3)

    def forward(self, x):
        b = x.shape[0]
        return self.c(x).reshape(b, 2, 4, -1).sum(1)


class PadFromChannels(nn.Module):
    def forward(self, x):
        return F.pad(x, (x.shape[1] - 2, 0, 0, (-x.shape[1]) % 4)) * 2


@pytest.mark.parametrize("model", [BatchConst(), BatchOnlyAfterValidConv(), PadFromChannels()],
                         ids=lambda m: type(m).__name__)
def test_sizes_of_batch_and_channels_follow_each_stream(model):
    """Converted at batch 2; streamed at batches 1 and 3, other lengths: sizes are not frozen."""
    s = sw.convert(model.double(), torch.randn(2, 4, 30, dtype=torch.float64))
    for batch, length in [(1, 17), (3, 41)]:
        x = torch.randn(batch, 4, length, dtype=torch.float64)
        assert_streams_like_offline(s, x, [0, 1, length - 1])


def test_values_built_from_the_length_are_refused():
    class LengthScaledKernel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4, 3))

        def forward(self, x):
            return F.conv1d(x, self.w * x.new_full((), x.shape[-1]), padding=1)

    class LengthH0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 6, batch_first=True)

        def forward(self, x):
            h0 = x.new_ones(1, x.size(0), 6) * (x.shape[-1] - 30)
            return self.rnn(x.transpose(1, 2), h0)[0].transpose(1, 2)

    for model in (LengthScaledKernel(), LengthH0()):
        with pytest.raises(ConversionError, match="built from the input's length"):
            sw.convert(model, torch.randn(2, 4, 30))


def test_a_batch_size_read_from_a_later_stream_adds_no_latency():
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv1d(4, 4, 5, padding=2)

        def forward(self, x):
            h = self.c(x)
            return torch.tanh(x) * h.new_ones(h.shape[0], 1, 1)

    x = torch.randn(1, 4, 40)
    s = sw.convert(M(), x)
    assert s.report.latency_frames == measured_delay(s, x) == 0
