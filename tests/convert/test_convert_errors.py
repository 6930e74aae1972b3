"""Bad models and bad input: clear errors that name the op and its place; streams untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import streamwise as sw
from streamwise.convert import ConversionError
from streamwise.core.stream import StreamClosedError
from tests.convert.architectures import CRNN, SpecNet


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # control flow on a tensor value: fx cannot trace it
            return x
        return -x


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(),
                                     nn.Conv1d(4, 4, 3, padding=1), nn.GroupNorm(2, 4))
        self.rnn = nn.GRU(4, 4, batch_first=True, bidirectional=True)

    def forward(self, x):
        h = self.encoder(x)
        y, _ = self.rnn(h.transpose(1, 2))
        return y.transpose(1, 2) - h.mean(-1, keepdim=True).repeat(1, 2, 1)


class Pooled(nn.Module):
    """A classifier: global average over time, so its output has no time axis at all."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 3, 3)

    def forward(self, x):
        return self.conv(x).mean(-1)


def test_untraceable_model_names_the_line():
    with pytest.raises(ConversionError, match=r"cannot trace Branchy.*test_convert_errors.py:\d+"):
        sw.convert(Branchy(), torch.randn(1, 1, 10))


@pytest.mark.parametrize(("example", "kwargs", "match"), [
    (torch.randn(10), {}, "batch axis and a time axis"),
    (torch.randn(1, 1, 10), {"time_dim": 3}, "out of range"),
    (torch.randn(1, 1, 10), {"time_dim": 0}, "batch axis"),
    (torch.full((1, 1, 10), float("nan")), {}, "NaN"),
    ([1.0, 2.0], {}, "torch.Tensor"),
])
def test_bad_examples(example, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sw.convert(nn.Conv1d(1, 1, 3), example, **kwargs)


def test_model_that_only_takes_one_length():
    with pytest.raises(ConversionError, match="fails on an input of shape"):
        sw.convert(nn.Linear(10, 4), torch.randn(1, 3, 10))


def test_every_unstreamable_op_is_reported_with_place_and_advice():
    with pytest.raises(ConversionError) as err:
        sw.convert(Encoder(), torch.randn(1, 1, 32))
    text = str(err.value)
    problems = err.value.problems
    assert len(problems) == 3, text
    assert "module `encoder.3` (GroupNorm)" in text and "normalizes over time" in text
    assert "use LayerNorm over channels" in text and "sw.WindowStream" in text
    assert "module `rnn` (GRU)" in text and "bidirectional" in text
    assert "`mean`" in text and "test_convert_errors.py" in text  # the source line of .mean


def test_output_without_time():
    with pytest.raises(ConversionError, match="reduces over time") as err:
        sw.convert(Pooled(), torch.randn(1, 1, 32))
    assert any("output" in p.where for p in err.value.problems)


def test_bad_chunks_are_refused_and_the_stream_goes_on():
    torch.manual_seed(0)
    model = SpecNet().eval()
    x = torch.randn(1, 1, 16, 30)
    s = sw.convert(model, x)
    st = s.stream(1)
    first = st.push(x[..., :7])
    for bad, match in [(torch.randn(1, 1, 8, 3), "16"),
                       (torch.randn(1, 2, 16, 3), "channels"),
                       (torch.randn(1, 1, 16, 3, dtype=torch.float64), "dtype"),
                       (torch.randn(2, 1, 16, 3), "batch size")]:
        with pytest.raises(ValueError, match=match):
            st.push(bad)
    rest = st.push(x[..., 7:])
    out = torch.cat([first, rest, st.close()], -1)
    assert torch.allclose(out, model(x), atol=1e-5)
    with pytest.raises(StreamClosedError):
        st.push(x[..., :1])


def test_time_on_axis_one_output_and_channels_check():
    torch.manual_seed(0)
    model = CRNN().eval()
    s = sw.convert(model, torch.randn(2, 1, 40))
    assert s.time_axis == -1 and s.out_time_axis == 1
    with pytest.raises(ValueError, match="channels"):
        s.stream(1).push(torch.randn(1, 3, 5))


def test_a_model_failing_on_a_probe_is_named_at_its_line_without_fx_noise():
    class Fails(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(3, 1, 3)

        def forward(self, x):
            return self.conv(x)  # given 1 channel below

    with pytest.raises(ConversionError) as e:
        sw.convert(Fails(), torch.randn(1, 1, 20))
    text = str(e.value)
    assert "test_convert_errors.py" in text and "`return self.conv(x)" in text
    assert "While executing" not in text and "tlparse" not in text
