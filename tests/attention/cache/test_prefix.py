"""Prefix: an updated context reuses the common prefix and equals a full recompute."""

import torch

from streamwise.attention import StreamingAttention, Window, common_prefix
from streamwise.attention.cache.prefix import for_attention


def test_update_reuses_the_common_prefix_exactly():
    torch.manual_seed(0)
    m = StreamingAttention(8, 2).double()
    p = for_attention(m)
    state = m.init_state(1, dtype=torch.float64)
    x = torch.randn(1, 30, 8, dtype=torch.float64)
    _, state = p.update(x, state)
    assert (p.reused, p.computed) == (0, 30)
    x2 = torch.cat([x[:, :22], torch.randn(1, 11, 8, dtype=torch.float64)], 1)
    y, state = p.update(x2, state)
    assert (p.reused, p.computed) == (22, 11)
    torch.testing.assert_close(y, m(x2)[:, 22:], rtol=1e-12, atol=1e-12)
    y, state = p.update(x2[:, :10], state)  # a shorter context: nothing to compute
    assert (p.reused, p.computed, y.shape[1]) == (10, 0, 0)
    assert state["t_in"] == 10


def test_common_prefix_and_crop_refusal():
    a = torch.tensor([[1, 2, 3, 4]])
    assert common_prefix(a, torch.tensor([[1, 2, 9, 4, 5]])) == 2
    assert common_prefix(a, a) == 4
    m = StreamingAttention(8, 2, cache=Window(4))
    try:
        m.crop(m.init_state(1), 0)
    except ValueError as e:
        assert "drops or merges" in str(e)
    else:
        raise AssertionError("crop on a window cache must be refused")
