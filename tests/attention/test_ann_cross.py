"""AnnCrossAttention: exact cross-attention when nothing is left out; recall measured."""

import math

import pytest
import torch

from streamwise.attention.ann_cross import AnnCrossAttention


def _dense(m, queries, memory):
    b, tq, _ = queries.shape
    h, d = m.heads, m.head_dim
    q = m.q_proj(queries).view(b, tq, h, d).transpose(1, 2)
    k = m.k_proj(memory).view(b, -1, h, d).transpose(1, 2)
    v = m.v_proj(memory).view(b, -1, h, d).transpose(1, 2)
    o = torch.softmax(q @ k.mT / math.sqrt(d), -1) @ v
    return m.out_proj(o.transpose(1, 2).reshape(b, tq, m.dim))


def test_nothing_left_out_is_cross_attention():
    torch.manual_seed(0)
    m = AnnCrossAttention(16, 4, k=50, bits=6, radius=6).double()
    queries, memory = torch.randn(2, 7, 16).double(), torch.randn(2, 50, 16).double()
    with torch.no_grad():
        torch.testing.assert_close(m(queries, memory), _dense(m, queries, memory),
                                   rtol=1e-12, atol=1e-12)
        assert bool((m.recall(queries, memory) == 1).all())


def test_recall_grows_with_the_radius_and_each_query_reads_at_most_k():
    torch.manual_seed(1)
    memory = torch.randn(3, 2000, 16).double()
    queries = memory[:, :20] + 0.2 * torch.randn(3, 20, 16).double()
    recalls = []
    with torch.no_grad():
        for r in (0, 1, 2, 4, 12):
            m = AnnCrossAttention(16, 4, k=10, bits=12, radius=r).double()
            torch.manual_seed(5)
            m.load_state_dict(AnnCrossAttention(16, 4, k=10).double().state_dict())
            chosen, _ = m.selection(queries, memory)
            assert int(chosen.sum(-1).max()) <= 10
            recalls.append(float(m.recall(queries, memory).mean()))
    assert recalls == sorted(recalls) and recalls[0] < 1.0 and recalls[-1] == 1.0


def test_bad_shapes_are_named():
    m = AnnCrossAttention(8, 2, k=4)
    with pytest.raises(ValueError, match=r"memory as \[B, T, 8\]"):
        m(torch.randn(1, 3, 8), torch.randn(1, 5, 7))
    with pytest.raises(ValueError, match="share the batch"):
        m(torch.randn(2, 3, 8), torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="multiple of heads"):
        AnnCrossAttention(10, 3, k=4)
