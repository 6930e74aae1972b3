import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from streamwise.layers.pool_mixer import prefix_mean, segment_max
from tests.strategies import assert_streams_like_offline, chunkings


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


def test_pooling_mixer_reset_restarts_a_row():
    torch.manual_seed(0)
    mixer = sw.CausalPoolingMixer(3, segment=4).double().eval()
    a, b = torch.randn(1, 3, 20, dtype=torch.float64), torch.randn(1, 3, 12, dtype=torch.float64)
    s = mixer.stream(batch_size=2)
    s.push(torch.cat([a[..., :8], a[..., :8]]))
    s.reset([False, True])
    out = s.push(torch.cat([a[..., 8:20], b]))
    torch.testing.assert_close(out[1:], mixer(b), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out[:1], mixer(a)[..., 8:], rtol=1e-10, atol=1e-10)
