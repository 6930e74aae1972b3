"""Python on the sequence length: pads and crops whose end follows the length stream exactly at
every length (their amount is computed when the stream ends), sizes that are the same at every
length are folded with a note, and what follows the length at the start, or changes a branch,
is refused with the length reason.

The models re-create the patterns of real code: EnCodec's extra padding (``math.ceil`` on the
number of frames, ``assert`` on the paddings, reflect padding split around a strided conv),
SNAC/DAC's constant crop of a residual, denoiser Demucs' ``valid_length`` (``max``, ``ceil``,
``int``) pad, skip crop and final crop to the input's length, Demucs v3's ``isinstance`` test.
Each is converted once on a 48-frame example and streamed at other lengths (batch 2, float64).

PYTEST_DONT_REWRITE: the models' ``assert`` statements must compile as Python compiles them (a
rewritten one is an ``if``, which the converter rightly refuses on a length).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from streamwise.convert import ConversionError
from streamwise.convert.convert import convert
from streamwise.convert.graph_stream import GraphStream
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)

EXAMPLE = 48
FEW = settings(deadline=None, max_examples=12, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


def _extra_padding(x: torch.Tensor, kernel: int, stride: int, total: int) -> int:
    length = x.shape[-1]
    n_frames = (length - kernel + total) / stride + 1
    ideal = (math.ceil(n_frames) - 1) * stride + (kernel - total)
    return ideal - length


def _pad1d(x: torch.Tensor, paddings: tuple[int, int], mode: str,
           short_inputs: bool = False) -> torch.Tensor:
    length = x.shape[-1]
    left, right = paddings
    assert left >= 0 and right >= 0, (left, right)
    if short_inputs:  # encodec's pad1d: inputs shorter than the pad take another path
        max_pad = max(left, right)
        extra = 0
        if length <= max_pad:
            extra = max_pad - length + 1
            x = F.pad(x, (0, extra))
        padded = F.pad(x, paddings, mode)
        end = padded.shape[-1] - extra
        return padded[..., :end]
    return F.pad(x, paddings, mode)


class ExtraPadConv(nn.Module):
    """EnCodec's SConv1d: the last window made complete by an end pad computed from the length."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, causal: bool,
                 short_inputs: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride)
        self.causal, self.short_inputs = causal, short_inputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        total = k - s
        extra = _extra_padding(x, k, s, total)
        if self.causal:
            x = _pad1d(x, (total, extra), "constant")
        else:
            right = total // 2
            x = _pad1d(x, (total - right, right + extra), "reflect", self.short_inputs)
        return self.conv(x)


class Codec(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.a = ExtraPadConv(2, 3, 5, 2, causal)
        self.b = ExtraPadConv(3, 4, 7, 3, causal)
        self.up = nn.ConvTranspose1d(4, 2, 6, stride=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(torch.tanh(self.b(torch.tanh(self.a(x)))))


class ResidualCrop(nn.Module):
    """SNAC/DAC's residual unit: an unpadded dilated conv, the skip cropped by the difference of
    the lengths (the same at every length)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 3, dilation=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(torch.sin(x))
        pad = (x.shape[-1] - y.shape[-1]) // 2
        if pad > 0:
            x = x[..., pad:-pad]
        return x + y


class ValidLength(nn.Module):
    """denoiser Demucs: pad at the end to a valid length, a strided U-Net with a skip cropped to
    the decoder's length, the output cropped back to the input's length."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel, self.stride, self.depth = 4, 2, 2
        self.enc = nn.ModuleList([nn.Conv1d(2, 3, 4, 2), nn.Conv1d(3, 3, 4, 2)])
        self.dec = nn.ModuleList([nn.ConvTranspose1d(3, 3, 4, 2), nn.ConvTranspose1d(3, 2, 4, 2)])

    def valid_length(self, length: int) -> int:
        for _ in range(self.depth):
            length = math.ceil((length - self.kernel) / self.stride) + 1
            length = max(length, 1)
        for _ in range(self.depth):
            length = (length - 1) * self.stride + self.kernel
        return int(length)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        length = mix.shape[-1]
        x = F.pad(mix, (0, self.valid_length(length) - length))
        skips = []
        for enc in self.enc:
            x = torch.relu(enc(x))
            skips.append(x)
        for dec in self.dec:
            skip = skips.pop(-1)
            x = dec(x + skip[..., :x.shape[-1]])
        return x[..., :length]


def _center_trim(tensor: torch.Tensor, reference: torch.Tensor | int) -> torch.Tensor:
    ref = reference.size(-1) if isinstance(reference, torch.Tensor) else reference
    delta = tensor.size(-1) - ref
    if delta < 0:
        raise ValueError(delta)
    if delta:
        tensor = tensor[..., delta // 2:-(delta - delta // 2)]
    return tensor


class CenterTrimmedSkip(nn.Module):
    """Demucs v3's skip: ``center_trim(skip, x)`` tests ``isinstance(reference, torch.Tensor)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y + _center_trim(x, y)


class ReflectPadWithShortInputBranch(nn.Module):
    """EnCodec's pad1d as it is: ``if length <= max_pad:`` holds for no probe length, but flips
    for streams of fewer frames than the pad: a branch on the length, refused."""

    def __init__(self) -> None:
        super().__init__()
        self.a = ExtraPadConv(2, 3, 5, 2, causal=False, short_inputs=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x)


class LeftPadToMultiple(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, ((-x.shape[-1]) % 4, 0))


class BranchOnParity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = max(x.shape[-1], 1)
        if n % 2 == 0:
            return x * 2
        return x


class BidirectionalThenBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(2, 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.rnn(x.transpose(1, 2))[0].transpose(1, 2)
        if max(y.shape[-1], 1) % 2:
            y = y[..., 1:]
        return y


_MODELS = {"codec, causal": lambda: Codec(causal=True),
           "codec, reflect": lambda: Codec(causal=False),
           "residual crop": ResidualCrop, "valid length": ValidLength,
           "center trim": CenterTrimmedSkip}
_converted: dict[str, GraphStream] = {}


def _stream(name: str) -> GraphStream:
    if name not in _converted:
        torch.manual_seed(0)
        model = _MODELS[name]().double().eval()
        _converted[name] = convert(model, torch.randn(2, 2, EXAMPLE, dtype=torch.float64))
    return _converted[name]


@pytest.mark.parametrize("name", list(_MODELS))
@FEW
@given(data=st.data())
def test_streams_like_offline_at_every_length(name: str, data: st.DataObject) -> None:
    stream = _stream(name)
    length = data.draw(st.integers(24, 110), label="length")
    x = torch.randn(2, 2, length, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(length))
    assert_streams_like_offline(stream, x, data.draw(chunkings(length), label="chunks"))


def test_end_amounts_are_computed_at_the_end_and_said() -> None:
    stream = _stream("valid length")
    hows = [row.how for row in stream.report.ops]
    assert any("after: computed at the end from its input's length" in h for h in hows)
    assert any("end computed from `mix`'s length" in h for h in hows)  # the final crop
    assert any("end where the sequence's length says" in n for n in stream.report.notes)
    x = torch.randn(2, 2, 77, dtype=torch.float64)
    assert_state_keeps_its_declaration(stream, x, [5, 0, 1, 30, 41])


def test_sizes_the_same_at_every_length_are_folded_with_a_note() -> None:
    notes = " ".join(_stream("residual crop").report.notes)
    assert "pad = (x.shape[-1] - y.shape[-1]) // 2`: `sub` = 6" in notes
    assert "48, 49, 50" in notes  # the lengths it was checked at
    notes = " ".join(_stream("codec, causal").report.notes)
    assert "assert left >= 0 and right >= 0" in notes


@pytest.mark.parametrize(("model", "match"), [
    (LeftPadToMultiple(), r"pads the start of time by an amount that follows the sequence "
                          r"length"),
    (BranchOnParity(), r"`if n % 2 == 0:`: an `if`, `while` or `assert` tests a value that "
                       r"follows the sequence length"),
    (ReflectPadWithShortInputBranch(), r"`if length <= max_pad:`: an `if`, `while` or `assert` "
                                       r"tests a value that follows the sequence length"),
    (BidirectionalThenBranch(), r"(?s)is bidirectional.*tracing stopped at .*`if max\(y"),
])
def test_what_follows_the_length_elsewhere_stays_refused(model: nn.Module, match: str) -> None:
    with pytest.raises(ConversionError, match=match):
        convert(model.double(), torch.randn(2, 2, EXAMPLE, dtype=torch.float64))


class LongInputsOnly(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # flips for streams of 4 frames or fewer
        if x.shape[-1] > 4:
            return x * 2
        return x


@FEW
@given(data=st.data())
def test_min_length_fixes_branches_that_hold_for_every_longer_stream(data: st.DataObject) -> None:
    torch.manual_seed(0)
    x48 = torch.randn(2, 2, EXAMPLE, dtype=torch.float64)
    with pytest.raises(ConversionError, match=r"`if x.shape\[-1\] > 4:`"):
        convert(LongInputsOnly(), x48)  # without it, a branch on the length is refused
    with pytest.raises(ConversionError, match=r"`if x.shape\[-1\] > 4:`"):
        convert(LongInputsOnly(), x48, min_length=3)  # it flips at 3 and 4
    stream = convert(LongInputsOnly(), x48, min_length=5)
    assert any("> 4:`: `gt` = True" in n for n in stream.report.notes)
    pads = convert(ReflectPadWithShortInputBranch().double(), x48, min_length=16)
    length = data.draw(st.integers(16, 90), label="length")
    x = torch.randn(2, 2, length, dtype=torch.float64)
    sizes = data.draw(chunkings(length), label="chunks")
    assert_streams_like_offline(stream, x, sizes)
    assert_streams_like_offline(pads, x, sizes)
    s = stream.stream(2, dtype=torch.float64)
    s.push(x[..., :4])
    with pytest.raises(ValueError, match="min_length=5"):  # shorter: an error, never wrong
        s.close()
