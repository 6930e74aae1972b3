"""BlockSparse: the own block plus the top past blocks by mean key; window attention when every
block in the window is taken; bounded cache; the approximation's error measured."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.attention import BlockSparse, StreamingAttention
from streamwise.attention.cache import entries as E
from streamwise.core.verify import stream_chunks
from tests.strategies import assert_state_keeps_its_declaration, chunkings


def _block_window_reference(m, x, block, blocks):
    """Attention where frame t sees frames from block(t) - (blocks - 1) up to t, by hand."""
    b, t, _ = x.shape
    h, d = m.heads, m.head_dim
    q = m.q_proj(x).view(b, t, h, d).transpose(1, 2)
    k = m.k_proj(x).view(b, t, h, d).transpose(1, 2)
    v = m.v_proj(x).view(b, t, h, d).transpose(1, 2)
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    ok = (j <= i) & (j >= (i // block - (blocks - 1)) * block)
    s = (q @ k.mT / math.sqrt(d)).masked_fill(~ok, -math.inf)
    o = torch.softmax(s, -1) @ v
    return m.out_proj(o.transpose(1, 2).reshape(b, t, h * d))


@settings(max_examples=20, deadline=None)
@given(data=st.data(), block=st.integers(1, 5), blocks=st.integers(1, 4),
       batch=st.integers(1, 2), length=st.integers(1, 40))
def test_taking_every_block_is_window_attention_over_whole_blocks(data, block, blocks, batch,
                                                                   length):
    torch.manual_seed(0)
    m = StreamingAttention(8, 2, encoding="none",
                           cache=BlockSparse(block, blocks, top=blocks)).double()
    x = torch.randn(batch, length, 8, dtype=torch.float64)
    sizes = data.draw(chunkings(length))
    y, _ = stream_chunks(m, x, sizes)
    assert_state_keeps_its_declaration(m, x, sizes)
    with torch.no_grad():
        ref = _block_window_reference(m, x, block, blocks)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    state = m.init_state(batch, dtype=torch.float64)
    _, state = m.step(x, state)
    assert E.size(state["cache"]) <= block * blocks  # bounded


def test_the_best_aligned_block_is_chosen():
    pol = BlockSparse(block=2, blocks=4, top=1)
    keys = torch.tensor([[-1.0, 0], [-1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [1, 1]])
    n = len(keys)
    pos = torch.arange(n)[None]
    cache = {**E.empty(1, 1, 2, "cpu", torch.float64), "k": keys[None, None].double(),
             "v": keys[None, None].double(), "pos": pos, "seg": pos * 0, "lidx": pos.clone(),
             "bias": torch.zeros(1, n).double(), "pin": torch.zeros(1, n, dtype=torch.bool),
             "valid": torch.ones(1, n, dtype=torch.bool)}
    q = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2).double()
    seen, _ = pol.attended(cache, q, {"pos": torch.tensor([[6]])}, {})
    # block 3 is the query's own (frame 6); of blocks 0-2, block 1 ([1, 0] keys) aligns best
    assert seen["valid"][0].tolist() == [False, False, True, True, False, False, True]


def test_fewer_blocks_approximate_full_attention_with_a_measured_error():
    torch.manual_seed(1)
    x = torch.randn(1, 96, 16, dtype=torch.float64)
    base = StreamingAttention(16, 2).double()
    with torch.no_grad():
        ref = base(x)
    errs = {}
    for top in (0, 2, 23):
        m = StreamingAttention(16, 2, cache=BlockSparse(4, 24, top)).double()
        m.load_state_dict(base.state_dict())
        y, _ = stream_chunks(m, x, [96])
        errs[top] = float((y - ref).norm() / ref.norm())
    assert errs[23] < 1e-10 < errs[2] < errs[0]  # 24 blocks of 4 cover all 96 frames


def test_settings_are_checked():
    with pytest.raises(ValueError, match="block"):
        BlockSparse(0, 2, 1)
    with pytest.raises(ValueError, match="top"):
        BlockSparse(2, 2, -1)
