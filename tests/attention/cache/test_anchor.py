"""Anchored: chunked attention plus the first chunks for ever streams exactly like its offline
mask; AnchorMemory holds the very frames the cache keeps; both stay bounded."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.attention import StreamingAttention
from streamwise.attention.cache.anchor import Anchored, AnchorMemory
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)

SETTINGS = [(4, 1, 1), (3, 2, 1), (2, 0, 2), (5, 1, 0), (1, 1, 1)]


@settings(max_examples=40, deadline=None)
@given(data=st.data(), case=st.sampled_from(SETTINGS), kind=st.sampled_from(["rope", "none"]),
       batch=st.integers(1, 3), length=st.integers(1, 40))
def test_streams_exactly_like_offline(data, case, kind, batch, length):
    torch.manual_seed(0)
    m = StreamingAttention(16, 4, kv_heads=2, encoding=kind, cache=Anchored(*case)).double()
    x = torch.randn(batch, length, 16, dtype=torch.float64)
    sizes = data.draw(chunkings(length))
    assert_streams_like_offline(m, x, sizes, rtol=1e-10)
    assert_state_keeps_its_declaration(m, x, sizes)


def test_offline_is_the_literal_mask():
    """Offline attention equals softmax over exactly the keys the rule names."""
    torch.manual_seed(1)
    size, left, anchor = 3, 1, 1
    m = StreamingAttention(8, 2, encoding="none", cache=Anchored(size, left, anchor)).double()
    x = torch.randn(2, 20, 8, dtype=torch.float64)
    i, j = torch.arange(20)[:, None] // size, torch.arange(20)[None] // size
    allowed = (j <= i) & ((j >= i - left) | (j < anchor))
    q = m.q_proj(x).view(2, 20, 2, 4).transpose(1, 2)
    k = m.k_proj(x).view(2, 20, 2, 4).transpose(1, 2)
    v = m.v_proj(x).view(2, 20, 2, 4).transpose(1, 2)
    s = (q @ k.mT / math.sqrt(4)).masked_fill(~allowed, -math.inf)
    ref = m.out_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(2, 20, 8))
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


def test_cache_keeps_anchor_and_window_and_stays_bounded():
    pol = Anchored(4, 1, anchor_chunks=1)
    m = StreamingAttention(8, 2, cache=pol)
    state = m.init_state(1)
    with torch.no_grad():
        for _ in range(500):
            _, state = m.step(torch.randn(1, 4, 8), state)
    assert state["cache"]["pos"][0].tolist() == [0, 1, 2, 3, 1996, 1997, 1998, 1999]
    assert pol.bound == 8 and m.state_nbytes(1) > 0


@settings(max_examples=25, deadline=None)
@given(data=st.data(), recent=st.integers(0, 2), anchor=st.integers(0, 2),
       size=st.integers(1, 4), length=st.integers(0, 30))
def test_memory_holds_what_the_cache_keeps(data, recent, anchor, size, length):
    m = StreamingAttention(8, 2, cache=Anchored(size, recent, anchor)).double()
    mem = AnchorMemory(size, recent=recent, anchor=anchor)
    x = torch.randn(2, length, 8, dtype=torch.float64)
    state, pos = m.init_state(2, dtype=torch.float64), 0
    for n in data.draw(chunkings(length)):
        with torch.no_grad():
            _, state = m.step(x[:, pos:pos + n], state)
        mem.write(x[:, pos:pos + n])
        pos += n
    if length % size == 0:  # the cache answers whole chunks: compare at a chunk boundary
        assert mem.pos.tolist() == state["cache"]["pos"][0].tolist()
    assert mem.pos.numel() <= (recent + anchor) * size
    got = mem.read()
    if got is not None:
        frames, kind, where = got
        torch.testing.assert_close(frames, x[:, where])
        assert bool((where[kind == 0] < anchor * size).all())


def test_memory_reads_first_chunk_and_last_chunk():
    mem = AnchorMemory(2, recent=1, anchor=1)
    assert mem.read() is None and mem.nbytes() == 0
    x = torch.arange(2 * 10 * 3, dtype=torch.float32).view(2, 10, 3)
    for c in range(5):
        mem.write(x[:, 2 * c:2 * c + 2])
    frames, kind, pos = mem.read()
    assert kind.tolist() == [0, 0, 1, 1] and pos.tolist() == [0, 1, 8, 9]
    torch.testing.assert_close(frames, x[:, [0, 1, 8, 9]])
    for _ in range(1000):  # bounded for ever
        mem.write(torch.zeros(2, 2, 3))
    assert mem.nbytes() == 4 * (2 * 3 * 4 + 8)


def test_bad_settings_and_frames():
    with pytest.raises(ValueError, match="chunk size must be an integer >= 1"):
        Anchored(0, 1)
    with pytest.raises(ValueError, match="left_chunks must be an integer >= 0"):
        Anchored(2, -1)
    with pytest.raises(ValueError, match="anchor_chunks must be an integer >= 0"):
        AnchorMemory(2, anchor=-1)
    mem = AnchorMemory(2)
    with pytest.raises(ValueError, match=r"expected frames \[B, n, C\]"):
        mem.write(torch.zeros(2, 3))
    mem.write(torch.zeros(2, 2, 3))
    with pytest.raises(ValueError, match=r"expected frames \[2, n, 3\]"):
        mem.write(torch.zeros(1, 2, 3))
    assert mem.t == 2  # the refused write changed nothing
