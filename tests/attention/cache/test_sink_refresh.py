"""SinkRefresh: sinks renewed on drift, kept on a stationary stream; chunking does not matter."""

import torch

from streamwise.attention import SinkRefresh, StreamingAttention
from streamwise.core.verify import stream_chunks


def _model(threshold):
    torch.manual_seed(0)
    m = StreamingAttention(8, 2, cache=SinkRefresh(2, 8, threshold)).double()
    with torch.no_grad():
        m.k_proj.weight.copy_(torch.eye(8))
    return m


def test_refreshes_when_the_stream_drifts_only():
    m = _model(0.5)
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g,
                                                                          dtype=torch.float64)
    noise = 0.05 * torch.randn(1, 100, 8, generator=g, dtype=torch.float64)
    steady = a + noise[:, :60]
    shift = torch.cat([a + noise[:, :30], -a + b + noise[:, 30:60]], 1)
    s1 = m.init_state(1, dtype=torch.float64)
    _, s1 = m.step(steady, s1)
    assert int(s1["policy"]["refreshes"][0]) == 0
    assert s1["cache"]["pos"][0, :2].tolist() == [0, 1]
    s2 = m.init_state(1, dtype=torch.float64)
    _, s2 = m.step(shift, s2)
    assert int(s2["policy"]["refreshes"][0]) >= 1
    sinks = s2["cache"]["pos"][0][s2["cache"]["pin"][0]].tolist()
    assert len(sinks) == 2 and min(sinks) >= 30  # the new sinks come from after the shift
    assert s2["cache"]["pos"].shape[1] <= m.policy.bound


def test_chunking_does_not_change_the_output():
    m = _model(0.9)
    x = torch.randn(2, 70, 8, dtype=torch.float64)
    y1, _ = stream_chunks(m, x, [70])
    y2, _ = stream_chunks(m, x, [1, 0, 5, 20, 44])
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
