import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from tests.strategies import assert_streams_like_offline, chunkings


@given(
    data=st.data(),
    k=st.integers(1, 8),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 2),
    batch=st.integers(1, 3),
    length=st.integers(5, 40),
)
def test_conv_transpose_streams_exactly(data, k, stride, dilation, batch, length):
    span = dilation * (k - 1) + 1
    padding = data.draw(st.integers(0, max(0, (span - 1) // 2)))
    output_padding = data.draw(st.integers(0, max(0, max(stride, dilation) - 1)))
    conv = sw.ConvTranspose1d(3, 4, k, stride, padding, output_padding, 1, True, dilation)
    x = torch.randn(batch, 3, length)
    assert_streams_like_offline(conv, x, data.draw(chunkings(length)))


def test_conv_transpose_equals_torch():
    ref = nn.ConvTranspose1d(3, 4, 7, stride=3, padding=2, output_padding=1, groups=1)
    conv = sw.ConvTranspose1d.from_torch(ref)
    x = torch.randn(2, 3, 31)
    torch.testing.assert_close(conv(x), ref(x))


def test_conv_transpose_float64():
    conv = sw.ConvTranspose1d(2, 2, 8, stride=4, padding=2).double()
    x = torch.randn(1, 2, 64, dtype=torch.float64)
    assert_streams_like_offline(conv, x, [3, 0, 1, 1, 20, 39], rtol=1e-10)


def test_conv_transpose_delay_matches_metadata():
    conv = sw.ConvTranspose1d(1, 1, 4, stride=2, padding=1)
    assert conv.stride == 2
    r = sw.verify(conv, torch.randn(1, 1, 64), trials=2)
    assert r.measured_delay_frames == float(conv.delay)
