"""LinearAbsorb: window softmax + linear attention over everything older, exact when streamed."""

import torch

from streamwise.attention import LinearAbsorb, StreamingAttention, Window
from streamwise.attention.cache.linear_absorb import feature


def test_equals_window_attention_while_nothing_left_the_window():
    torch.manual_seed(0)
    a = StreamingAttention(8, 2, cache=LinearAbsorb(50)).double()
    w = StreamingAttention(8, 2, cache=Window(50)).double()
    w.load_state_dict(a.state_dict())
    x = torch.randn(2, 30, 8, dtype=torch.float64)
    torch.testing.assert_close(a(x), w(x))


def test_absorbed_state_is_the_sum_over_evicted_frames():
    torch.manual_seed(1)
    m = StreamingAttention(8, 2, encoding="none", cache=LinearAbsorb(4)).double()
    x = torch.randn(1, 25, 8, dtype=torch.float64)
    state = m.init_state(1, dtype=torch.float64)
    _, state = m.step(x, state)
    k = m.k_proj(x).view(1, 25, 2, 4).transpose(1, 2)[:, :, :22]  # frames 0..21 left
    v = m.v_proj(x).view(1, 25, 2, 4).transpose(1, 2)[:, :, :22]
    torch.testing.assert_close(state["policy"]["S"], feature(k, "elu").mT @ v)
    assert state["cache"]["pos"][0].tolist() == [22, 23, 24]
