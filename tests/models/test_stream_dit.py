"""StreamDiT: window attention over the buffer's chunks, memory tokens seen by all and seeing only
each other, per-frame times; it drives a MovingBuffer; bad input is refused clearly."""

from __future__ import annotations

import pytest
import torch

from streamwise.attention.cache.anchor import AnchorMemory
from streamwise.core.moving_buffer import MovingBuffer, flow_times
from streamwise.models.stream_dit import (
    StreamDiT,
    flow_matching_loss,
    staggered_times,
    velocity,
)


def _model(**kw):
    torch.manual_seed(0)
    m = StreamDiT(6, 4, dim=16, heads=2, **kw).double()
    for p in m.parameters():  # leave adaLN-Zero's zeros: every path must carry signal
        torch.nn.init.normal_(p, std=0.3)
    return m.eval()


def test_window_attention_reaches_only_neighbouring_chunks():
    m = _model(layers=1, window=1, max_chunks=5)
    x = torch.randn(2, 20, 6, dtype=torch.float64)
    t = torch.linspace(0.9, 0.1, 20, dtype=torch.float64)
    y = m(x, t)
    far = x.clone()
    far[:, 12:] += 1.0  # chunks 3 and 4: out of chunk 0 and 1's window
    y2 = m(far, t)
    torch.testing.assert_close(y2[:, :8], y[:, :8], rtol=0, atol=1e-12)
    assert (y2[:, 8:12] - y[:, 8:12]).abs().max() > 1e-3  # chunk 2 sees chunk 3


def test_memory_is_seen_by_the_buffer_and_does_not_see_it():
    m = _model(layers=2, window=0, max_chunks=3)
    x = torch.randn(1, 12, 6, dtype=torch.float64)
    t = torch.full((12,), 0.5, dtype=torch.float64)
    mem = (torch.randn(1, 8, 6, dtype=torch.float64), torch.tensor([0] * 4 + [1] * 4),
           torch.arange(8))
    y = m(x, t, mem)
    assert (y - m(x, t)).abs().max() > 1e-3
    # window 0: chunks talk only through the memory, which does not read them
    x2 = x.clone()
    x2[:, 8:] += 1.0
    torch.testing.assert_close(m(x2, t, mem)[:, :8], y[:, :8], rtol=0, atol=1e-12)


def test_per_frame_times_and_batched_times_agree():
    m = _model()
    x = torch.randn(3, 8, 6, dtype=torch.float64)
    t = torch.rand(8, dtype=torch.float64)
    torch.testing.assert_close(m(x, t), m(x, t.expand(3, 8)))
    assert (m(x, t) - m(x, t.flip(0))).abs().max() > 1e-3


def test_trains_a_little_and_drives_a_moving_buffer():
    torch.manual_seed(1)
    m = StreamDiT(6, 4, dim=16, heads=2, max_chunks=3)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    clean = torch.sin(torch.arange(12.0)[None, :, None] / 2 + torch.arange(6.0)).repeat(8, 1, 1)
    first = None
    for _ in range(40):
        loss = flow_matching_loss(m, clean, staggered_times(8, 3, 4, 3, mixed=0.25))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < first
    buf = MovingBuffer(velocity(m.eval()), flow_times(3), AnchorMemory(4, recent=1, anchor=1))
    outs = [buf.push(torch.randn(2, 4, 6)) for _ in range(10)]
    assert [o is None for o in outs[:2]] == [True, True]
    assert all(o.shape == (2, 4, 6) and torch.isfinite(o).all() for o in outs[2:])


def test_staggered_times_follow_the_buffer():
    t = staggered_times(5, 3, 2, 4, mixed=0.0)
    assert t.shape == (5, 6)
    lv = (t[:, ::2] * 4).floor()
    assert lv.tolist() == [[2.0, 1.0, 0.0]] * 5  # oldest chunk the cleanest, one level apart
    free = staggered_times(50, 3, 2, 3, mixed=1.0)[:, ::2]
    assert bool((free[:, :-1] >= free[:, 1:]).all())


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        StreamDiT(6, 0)
    with pytest.raises(ValueError, match=r"dim \(10\) must be even and a multiple of heads"):
        StreamDiT(6, 4, dim=10, heads=4)
    m = StreamDiT(6, 4, dim=16, heads=2, max_chunks=2)
    with pytest.raises(ValueError, match=r"expected a buffer \[B, T, 6\]"):
        m(torch.zeros(1, 8, 5), torch.zeros(8))
    with pytest.raises(ValueError, match="expected T a multiple of chunk 4 with 1 .. 2 chunks"):
        m(torch.zeros(1, 12, 6), torch.zeros(12))
    with pytest.raises(ValueError, match=r"expected flow times t \[8\] or \[1, 8\]"):
        m(torch.zeros(1, 8, 6), torch.zeros(4))
    with pytest.raises(ValueError, match=r"expected memory frames \[1, M, 6\]"):
        m(torch.zeros(1, 8, 6), torch.zeros(8),
          (torch.zeros(2, 4, 6), torch.zeros(4, dtype=torch.long), torch.arange(4)))
