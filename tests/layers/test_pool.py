import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from tests.strategies import assert_streams_like_offline, chunkings


@given(
    data=st.data(),
    k=st.integers(1, 6),
    stride=st.integers(1, 5),
    dilation=st.integers(1, 2),
    ceil=st.booleans(),
    length=st.integers(12, 50),
)
def test_maxpool_streams_exactly(data, k, stride, dilation, ceil, length):
    pad = data.draw(st.integers(0, k // 2))
    pool = sw.MaxPool1d(k, stride, pad, dilation, ceil)
    x = torch.randn(2, 3, length)
    ref = nn.MaxPool1d(k, stride, pad, dilation, ceil_mode=ceil)(x)
    y = assert_streams_like_offline(pool, x, data.draw(chunkings(length)))
    torch.testing.assert_close(y, ref)


@given(
    data=st.data(),
    k=st.integers(1, 6),
    stride=st.integers(1, 5),
    include=st.booleans(),
    length=st.integers(12, 50),
)
def test_avgpool_streams_exactly(data, k, stride, include, length):
    pad = data.draw(st.integers(0, k // 2))
    pool = sw.AvgPool1d(k, stride, pad, count_include_pad=include)
    x = torch.randn(2, 3, length)
    ref = nn.AvgPool1d(k, stride, pad, count_include_pad=include)(x)
    y = assert_streams_like_offline(pool, x, data.draw(chunkings(length)))
    torch.testing.assert_close(y, ref)


def test_pool_windows_align_to_absolute_index():
    """Chunks that straddle pooling windows (StreamiNNC's misalignment) still give offline."""
    pool = sw.MaxPool1d(4, 4)
    x = torch.arange(24.0).view(1, 1, 24)
    s = pool.stream()
    outs = [s.push(x[..., a:b]) for a, b in [(0, 3), (3, 9), (9, 10), (10, 24)]]
    assert [o.shape[-1] for o in outs] == [0, 2, 0, 4]
    torch.testing.assert_close(torch.cat(outs, -1), pool(x))


def test_avgpool_ceil_mode_is_refused():
    with pytest.raises(ValueError, match="ceil_mode"):
        sw.AvgPool1d(3, 2, ceil_mode=True)


def test_maxpool_ceil_mode_on_inputs_shorter_than_the_window():
    for k, s, t in [(2, 2, 1), (3, 2, 2), (4, 3, 2)]:
        pool = sw.MaxPool1d(k, s, ceil_mode=True)
        x = torch.randn(1, 1, t)
        ref = nn.MaxPool1d(k, s, ceil_mode=True)(x)
        y = assert_streams_like_offline(pool, x, [t])
        torch.testing.assert_close(y, ref)
