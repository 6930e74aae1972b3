"""Retrieve: evicted pages come back when the query needs them (needle in a stream)."""

import torch

from streamwise.attention import Retrieve, Sinks, StreamingAttention
from streamwise.core.verify import stream_chunks


def needle_trial(seed: int, policy, length: int = 400):
    """Random small frames, one large needle early on, and a last frame whose query matches the
    needle's key (keys are the frames shifted by one channel, so the query's own key does not)."""
    g = torch.Generator().manual_seed(seed)
    d = 16
    m = StreamingAttention(d, 2, encoding="none", cache=policy).double()
    with torch.no_grad():
        for p in (m.q_proj, m.v_proj, m.out_proj):
            p.weight.copy_(torch.eye(d))
        m.k_proj.weight.copy_(torch.eye(d).roll(1, 0))
    x = 0.3 * torch.randn(1, length, d, generator=g, dtype=torch.float64)
    at = int(torch.randint(10, length // 2, (1,), generator=g))
    needle = torch.randn(d, generator=g, dtype=torch.float64)
    needle = 8 * needle / needle.norm()
    x[0, at] = needle
    x[0, -1] = needle.roll(1)  # the query at the end asks for it
    return m, x, at


@torch.no_grad()
def test_needle_recall_and_error():
    # 200 frames: the needle (frame 10..99) has left the 4 + 32 frames kept long before the end
    hits, err_r, err_w, trials = 0, 0.0, 0.0, 20
    for seed in range(trials):
        pol = Retrieve(k=2, page=8, window=32, n_sink=4)
        m, x, at = needle_trial(seed, pol, length=200)
        state = m.init_state(1, dtype=torch.float64)
        y, state = m.step(x, state)
        fetched = state["policy"]["ppos"][0, state["policy"]["last"][0]]
        hits += int((fetched == at).any())
        full = m(x)[0, -1]
        w = StreamingAttention(16, 2, encoding="none", cache=Sinks(4, 32)).double()
        w.load_state_dict(m.state_dict())
        err_r += float((y[0, -1] - full).norm() / full.norm())
        err_w += float((w(x)[0, -1] - full).norm() / full.norm())
    recall = hits / trials
    assert recall >= 0.9, recall
    assert err_r < 0.5 * err_w  # fetching the needle's page brings the answer back


def test_store_is_int8_and_chunking_does_not_matter():
    pol = Retrieve(k=1, page=4, window=8, n_sink=2, max_pages=5)
    m, x, _ = needle_trial(0, pol, length=120)
    y1, _ = stream_chunks(m, x, [120])
    y2, _ = stream_chunks(m, x, [1, 0, 17, 102])
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    state = m.init_state(1, dtype=torch.float64)
    _, state = m.step(x, state)
    assert state["policy"]["qk"].dtype == torch.int8
    assert state["policy"]["qk"].shape[1] == 5  # max_pages
    assert state["cache"]["pos"].shape[1] <= pol.bound
