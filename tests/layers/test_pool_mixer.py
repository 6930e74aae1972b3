import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from streamwise.layers.pool_mixer import prefix_mean, segment_max
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)


@given(data=st.data(), segment=st.integers(1, 9), local=st.integers(1, 5),
       batch=st.integers(1, 3), length=st.integers(1, 60))
def test_pooling_mixer_streams_exactly(data, segment, local, batch, length):
    torch.manual_seed(0)
    mixer = sw.CausalPoolingMixer(4, segment=segment, local=local).double()
    x = torch.randn(batch, 4, length, dtype=torch.float64)
    assert_streams_like_offline(mixer, x, data.draw(chunkings(length)), rtol=1e-10)


def test_poolings_see_only_the_past():
    x = torch.tensor([[[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]]])
    mean, _ = prefix_mean(x)
    torch.testing.assert_close(mean[0, 0], torch.tensor([3.0, 2.0, 8 / 3, 2.25, 2.8, 23 / 6,
                                                          25 / 7]))
    seg = segment_max(x, 0, 3, None)
    assert seg.flatten().tolist() == [3.0, 3.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    local = sw.MaxPool1d(2, 1, padding="causal")(x)
    assert local.flatten().tolist() == [3.0, 3.0, 4.0, 4.0, 5.0, 9.0, 9.0]


@pytest.mark.parametrize("attend", [None, 6])  # 6: the old row's frames must be masked out
def test_pooling_mixer_reset_restarts_a_row(attend):
    torch.manual_seed(0)
    mixer = sw.CausalPoolingMixer(3, segment=4, attend=attend).double().eval()
    a, b = torch.randn(1, 3, 20, dtype=torch.float64), torch.randn(1, 3, 12, dtype=torch.float64)
    s = mixer.stream(batch_size=2)
    s.push(torch.cat([a[..., :8], a[..., :8]]))
    s.reset([False, True])
    out = s.push(torch.cat([a[..., 8:20], b]))
    torch.testing.assert_close(out[1:], mixer(b), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out[:1], mixer(a)[..., 8:], rtol=1e-10, atol=1e-10)


@given(data=st.data(), attend=st.integers(1, 8), segment=st.integers(1, 6),
       batch=st.integers(1, 3), length=st.integers(1, 50))
def test_second_stage_attention_streams_exactly(data, attend, segment, batch, length):
    torch.manual_seed(1)
    mixer = sw.CausalPoolingMixer(4, segment=segment, local=2, attend=attend).double()
    x = torch.randn(batch, 4, length, dtype=torch.float64)
    sizes = data.draw(chunkings(length))
    assert_streams_like_offline(mixer, x, sizes, rtol=1e-10)
    assert_state_keeps_its_declaration(mixer, x, sizes, in_channels=4)


def test_second_stage_is_the_pooled_query_attending_the_last_frames():
    torch.manual_seed(2)
    c, w = 3, 4
    mixer = sw.CausalPoolingMixer(c, segment=2, attend=w).double()
    x = torch.randn(1, c, 9, dtype=torch.float64)
    g, _ = prefix_mean(x)
    got = mixer._attend(g, x, torch.zeros(1, dtype=torch.long))
    for t in range(9):  # by hand: softmax over frames t-w+1 .. t of (Q g_t) . (K x_s)
        keys = range(max(0, t - w + 1), t + 1)
        q = mixer.q(g[0, :, t])
        scores = torch.stack([q @ mixer.k(x[0, :, s]) / c ** 0.5 for s in keys])
        want = sum(a * mixer.v(x[0, :, s]) for a, s in zip(torch.softmax(scores, 0), keys))
        torch.testing.assert_close(got[0, :, t], want, rtol=1e-12, atol=1e-12)
    # it is not the prefix mean any more, and without attend nothing changed
    assert not torch.allclose(got, g)
    plain = sw.CausalPoolingMixer(c, segment=2)
    assert not hasattr(plain, "q") and "tail" not in plain.state_spec(c)["inner"]


def test_attend_must_be_a_window():
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="attend must be None or a window"):
            sw.CausalPoolingMixer(3, attend=bad)
