import math

import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from streamwise.layers.aaren import prefix_scan
from tests.strategies import assert_streams_like_offline, chunkings


@given(data=st.data(), heads=st.integers(1, 3), batch=st.integers(1, 3), length=st.integers(1, 70),
       scale=st.sampled_from([1.0, 30.0]))
def test_aaren_streams_exactly(data, heads, batch, length, scale):
    torch.manual_seed(0)
    layer = sw.Aaren(6, heads=heads, head_dim=4).double()
    x = torch.randn(batch, 6, length, dtype=torch.float64) * scale
    assert_streams_like_offline(layer, x, data.draw(chunkings(length)), rtol=1e-10)


def test_aaren_equals_softmax_attention_over_the_prefix():
    torch.manual_seed(1)
    layer = sw.Aaren(5, heads=2, head_dim=3).double()
    x = torch.randn(2, 5, 40, dtype=torch.float64) * 10  # large scores: stability matters
    s, v = layer.scores_values(x)
    t = x.shape[-1]
    future = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
    att = s[:, :, None, :].expand(-1, -1, t, -1).masked_fill(future, -math.inf).softmax(-1)
    o = torch.einsum("bhti,bhdi->bhdt", att, v)
    with torch.no_grad():
        ref = layer._output(torch.ones_like(s), o)
        torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-10)


def test_prefix_scan_is_stable_for_huge_scores():
    s = torch.tensor([[1000.0, -1000.0, 2000.0]])
    v = torch.tensor([[[1.0, 2.0, 3.0]]])
    _, u, w = prefix_scan(s, v)
    out = w[0, 0] / u[0]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.tensor([1.0, 1.0, 3.0]))


def test_aaren_state_is_constant_size():
    layer = sw.Aaren(4, heads=2)
    s = layer.stream()
    s.push(torch.randn(1, 4, 10))
    small = s.state_nbytes()
    s.push(torch.randn(1, 4, 1000))
    assert s.state_nbytes() == small <= layer.state_nbytes(1)
