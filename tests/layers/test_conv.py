import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from tests.strategies import assert_streams_like_offline, chunkings

PADS = st.one_of(
    st.sampled_from(["causal", "valid"]),
    st.integers(0, 3),
    st.tuples(st.integers(0, 6), st.integers(0, 6)),
)


@given(
    data=st.data(),
    k=st.integers(1, 6),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
    pad=PADS,
    groups=st.sampled_from([1, 2]),
    bias=st.booleans(),
    batch=st.integers(1, 3),
    length=st.integers(20, 60),
)
def test_conv1d_streams_exactly(data, k, stride, dilation, pad, groups, bias, batch, length):
    conv = sw.Conv1d(4, 6, k, stride, pad, dilation, groups, bias)
    x = torch.randn(batch, 4, length)
    assert_streams_like_offline(conv, x, data.draw(chunkings(length)))


@given(data=st.data(), k=st.integers(1, 7), length=st.integers(10, 40))
def test_conv1d_same_and_replicate(data, k, length):
    for conv in (sw.Conv1d(3, 2, k, padding="same"),
                 sw.Conv1d(3, 2, k + 1, padding="causal", padding_mode="replicate")):
        x = torch.randn(2, 3, length)
        assert_streams_like_offline(conv, x, data.draw(chunkings(length)))


@pytest.mark.parametrize("padding", [0, 2, "same", "valid"])
@pytest.mark.parametrize("padding_mode", ["zeros", "replicate"])
def test_conv1d_equals_torch(padding, padding_mode):
    ref = nn.Conv1d(3, 5, 5, padding=padding, dilation=2, padding_mode=padding_mode)
    conv = sw.Conv1d.from_torch(ref)
    x = torch.randn(2, 3, 50)
    torch.testing.assert_close(conv(x), ref(x))
    assert conv.weight is ref.weight
    assert set(conv.state_dict()) == set(ref.state_dict())


def test_conv1d_noncausal_padding_is_delay():
    conv = sw.Conv1d(1, 1, 7, padding="same")
    assert conv.delay == 3 and conv.receptive_field == 7
    assert sw.Conv1d(1, 1, 7, padding="causal").delay == 0


def test_conv1d_float64_exact_to_1e_10():
    conv = sw.Conv1d(3, 4, 5, stride=2, padding=3, dilation=2).double()
    x = torch.randn(2, 3, 101, dtype=torch.float64)
    assert_streams_like_offline(conv, x, [1, 0, 7, 13, 1, 1, 50, 28], rtol=1e-10)


def test_conv1d_rejects_unstreamable_padding_modes():
    with pytest.raises(ValueError, match="reflect"):
        sw.Conv1d(1, 1, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match="stride 1"):
        sw.Conv1d(1, 1, 3, stride=2, padding="same")


@given(
    data=st.data(),
    kf=st.integers(1, 3),
    kt=st.integers(1, 4),
    sf=st.integers(1, 2),
    st_=st.integers(1, 3),
    pad_t=PADS,
    length=st.integers(12, 40),
)
def test_conv2d_streams_exactly(data, kf, kt, sf, st_, pad_t, length):
    conv = sw.Conv2d(2, 3, (kf, kt), (sf, st_), padding=(1, pad_t))
    x = torch.randn(2, 2, 7, length)
    assert_streams_like_offline(conv, x, data.draw(chunkings(length)))


def test_conv2d_equals_torch():
    conv = sw.Conv2d(2, 3, (3, 5), stride=(2, 1), padding=1)
    ref = nn.Conv2d(2, 3, (3, 5), stride=(2, 1), padding=1)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 2, 9, 30)
    torch.testing.assert_close(conv(x), ref(x))


def test_empty_first_chunk_emits_nothing_even_with_padding_beyond_the_kernel():
    conv = sw.Conv1d(1, 1, 2, padding=(3, 0), padding_mode="replicate").double()
    x = torch.randn(1, 1, 6, dtype=torch.float64)
    s = conv.stream(dtype=torch.float64)
    assert s.push(x[..., :0]).shape[-1] == 0
    y = torch.cat([s.push(x), s.close()], -1)
    torch.testing.assert_close(y, conv(x))


def test_replicate_without_padding_is_accepted():
    ref = nn.Conv1d(2, 2, 1, stride=2, padding_mode="replicate")
    conv = sw.Conv1d.from_torch(ref)
    x = torch.randn(1, 2, 9)
    torch.testing.assert_close(conv(x), ref(x))
