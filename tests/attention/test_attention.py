"""StreamingAttention: streamed == offline for every exact policy; offline == a naive reference."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from streamwise.attention import (
    Chunked,
    Full,
    LinearAbsorb,
    Segments,
    Sinks,
    StreamingAttention,
    Window,
)
from streamwise.attention.positions import alibi_slopes, apply_rope, rope_frequencies, rope_scores
from tests.strategies import assert_streams_like_offline, chunkings

POLICIES = [
    lambda: Full(),
    lambda: Window(5),
    lambda: Window(3, positions="within_cache"),
    lambda: Sinks(2, 6),
    lambda: Sinks(3, 4, positions="absolute"),
    lambda: Chunked(4, 1),
    lambda: Chunked(3, 2, positions="within_cache"),
    lambda: Chunked(1, 0),
    lambda: LinearAbsorb(4),
    lambda: LinearAbsorb(2, feature_map="relu", positions="within_cache"),
]
HEADS = [(4, 4), (4, 2), (4, 1), (2, 2)]


@given(data=st.data(), policy=st.sampled_from(POLICIES), kind=st.sampled_from(["rope", "alibi",
       "none"]), heads=st.sampled_from(HEADS), batch=st.integers(1, 3), length=st.integers(1, 50))
def test_streams_exactly_like_offline(data, policy, kind, heads, batch, length):
    torch.manual_seed(0)
    m = StreamingAttention(16, heads[0], kv_heads=heads[1], encoding=kind, cache=policy()).double()
    x = torch.randn(batch, length, 16, dtype=torch.float64)
    assert_streams_like_offline(m, x, data.draw(chunkings(length)), rtol=1e-10)


@given(data=st.data(), length=st.integers(1, 40))
def test_segments_stream_exactly_with_interleaved_input(data, length):
    """Two segments with their own rules and position groups, arriving in any order."""
    torch.manual_seed(1)
    pol = Segments({"vision": Window(3), "text": Sinks(2, 5)}, offsets={"text": 1000})
    m = StreamingAttention(16, 4, kv_heads=2, cache=pol).double()
    x = torch.randn(2, length, 16, dtype=torch.float64)
    segs = data.draw(st.lists(st.sampled_from(["vision", "text"]), min_size=length,
                              max_size=length))
    ref = m(x, segment=segs)
    state, outs, pos = m.init_state(2, dtype=torch.float64), [], 0
    for n in data.draw(chunkings(length)):
        y, state = m.step(x[:, pos : pos + n], state, segment=segs[pos : pos + n])
        outs.append(y)
        pos += n
    torch.testing.assert_close(torch.cat(outs, 1), ref, rtol=1e-10, atol=1e-10)
    assert state["cache"]["pos"].shape[1] <= pol.bound


def test_float32_within_1e5():
    torch.manual_seed(2)
    m = StreamingAttention(32, 4, kv_heads=2, cache=Sinks(4, 16))
    x = torch.randn(2, 300, 32)
    assert_streams_like_offline(m, x, [1] * 50 + [0, 7, 93, 150], rtol=1e-5)


def _naive(m: StreamingAttention, x: torch.Tensor, visible, within_cache: bool) -> torch.Tensor:
    """Literal per-query attention: build the list of keys the query sees, place them at absolute
    frames or at their slot among the seen keys (StreamingLLM), rotate, softmax."""
    b, t, _ = x.shape
    h, kvh, d = m.heads, m.kv_heads, m.head_dim
    q = m.q_proj(x).view(b, t, h, d)
    k = m.k_proj(x).view(b, t, kvh, d).repeat_interleave(h // kvh, 2)
    v = m.v_proj(x).view(b, t, kvh, d).repeat_interleave(h // kvh, 2)
    freqs = rope_frequencies(d, dtype=torch.float64)
    slopes = alibi_slopes(h, dtype=x.dtype)
    out = torch.zeros(b, t, h, d, dtype=x.dtype)
    for i in range(t):
        js = [j for j in range(t) if visible(i, j)]
        kp = torch.arange(len(js)) if within_cache else torch.tensor(js)
        qp = js.index(i) if within_cache else i
        kk, vv = k[:, js], v[:, js]  # [B, n, H, D]
        qq = q[:, i]
        if m.kind == "rope":
            qq = apply_rope(qq[:, :, None], torch.tensor([qp]), freqs)[:, :, 0]
            kk = apply_rope(kk.transpose(1, 2), kp, freqs).transpose(1, 2)
        s = torch.einsum("bhd,bnhd->bhn", qq, kk) / math.sqrt(d)
        if m.kind == "alibi":
            s = s - slopes[None, :, None] * (qp - kp).abs()[None, None].to(x.dtype)
        out[:, i] = torch.einsum("bhn,bnhd->bhd", s.softmax(-1), vv)
    return m.out_proj(out.reshape(b, t, h * d))


CASES = [
    (Window(4), lambda i, j: i - 4 < j <= i),
    (Sinks(2, 5, positions="absolute"), lambda i, j: j <= i and (j < 2 or j > i - 5)),
    (Sinks(2, 5, positions="within_cache"), lambda i, j: j <= i and (j < 2 or j > i - 5)),
    (Chunked(4, 1), lambda i, j: i // 4 - 1 <= j // 4 <= i // 4),
    (Chunked(3, 0, positions="within_cache"), lambda i, j: j // 3 == i // 3),
]


@pytest.mark.parametrize("kind", ["rope", "alibi", "none"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_offline_equals_naive_reference(kind, case):
    policy, visible = CASES[case]
    torch.manual_seed(3)
    m = StreamingAttention(16, 4, kv_heads=2, encoding=kind, cache=policy).double()
    x = torch.randn(2, 23, 16, dtype=torch.float64)
    with torch.no_grad():
        ref = _naive(m, x, visible, policy.positions == "within_cache")
        torch.testing.assert_close(m(x), ref, rtol=1e-10, atol=1e-10)


def test_rope_scores_equal_rotating_both_sides():
    torch.manual_seed(4)
    q = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    k = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    f = rope_frequencies(8, dtype=torch.float64)
    qp, kp = torch.arange(5) + 9, torch.tensor([0, 1, 5, 6, 7, 8, 9])
    ref = apply_rope(q, qp, f) @ apply_rope(k, kp, f).mT
    dist = (qp[:, None] - kp[None])[None].expand(2, -1, -1)
    torch.testing.assert_close(rope_scores(q, k, dist, f), ref, rtol=1e-12, atol=1e-12)


def test_layouts_agree_and_stream_wrapper_takes_btc():
    torch.manual_seed(5)
    a = StreamingAttention(8, 2, cache=Window(3))
    b = StreamingAttention(8, 2, cache=Window(3), layout="bct")
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 12, 8)
    torch.testing.assert_close(b(x.transpose(1, 2)).transpose(1, 2), a(x))
    s = a.stream()
    y = torch.cat([s.push(x[:, :5]), s.push(x[:, 5:]), s.close()], 1)
    torch.testing.assert_close(y, a(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[1, T, 8\]"):
        s2 = a.stream()
        s2.push(torch.randn(1, 8, 5))
    assert_streams_like_offline(b, x.transpose(1, 2).contiguous(), [3, 0, 9])


def test_grouped_kv_equals_repeated_heads():
    torch.manual_seed(6)
    g = StreamingAttention(16, 4, kv_heads=2, cache=Window(6)).double()
    full = StreamingAttention(16, 4, kv_heads=4, cache=Window(6)).double()
    sd = g.state_dict()
    for name in ("k_proj", "v_proj"):
        w = sd[f"{name}.weight"].view(2, 4, 16).repeat_interleave(2, 0).reshape(16, 16)
        sd[f"{name}.weight"] = w
    full.load_state_dict(sd)
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    torch.testing.assert_close(g(x), full(x))


@pytest.mark.parametrize("policy", [Window(64), Sinks(4, 60), Chunked(16, 3), LinearAbsorb(32)])
def test_cache_stays_bounded_over_10k_frames(policy):
    torch.manual_seed(7)
    m = StreamingAttention(16, 2, cache=policy)
    state = m.init_state(1)
    sizes = []
    with torch.inference_mode():
        for _ in range(200):
            _, state = m.step(torch.randn(1, 50, 16), state)
            sizes.append(state["cache"]["pos"].shape[1])
    assert state["t_in"] == 10_000
    assert max(sizes) <= policy.bound
    assert sw.core.protocol.tree_nbytes(state) <= m.state_nbytes(1) + 512


def _snapshot(state):
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v)
            for k, v in sw.core.protocol.tree_tensors(state) and state["cache"].items()}


@pytest.mark.parametrize("bad, match", [
    (torch.randn(2, 5, 16), "batch mismatch"),
    (torch.randn(1, 5, 12), "16 channels"),
    (torch.randn(1, 5, 16, dtype=torch.float64), "dtype"),
    (torch.randn(5, 16), r"\[1, T, 16\]"),
])
def test_bad_chunks_are_refused_and_change_nothing(bad, match):
    m = StreamingAttention(16, 4, cache=Sinks(2, 4))
    state = m.init_state(1)
    _, state = m.step(torch.randn(1, 7, 16), state)
    before = _snapshot(state)
    with pytest.raises(ValueError, match=match):
        m.step(bad, state)
    for k, v in before.items():
        assert torch.equal(state["cache"][k], v)
    assert state["t_in"] == 7


def test_after_close_and_reset_are_refused():
    m = StreamingAttention(8, 2, cache=Window(4))
    s = m.stream()
    s.push(torch.randn(1, 3, 8))
    s.close()
    with pytest.raises(ValueError, match="after close"):
        s.push(torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match="restart single rows"):
        m.reset_rows(m.init_state(2), torch.tensor([True, False]), 0)


@pytest.mark.parametrize("make, match", [
    (lambda: Window(0), "window must be an integer >= 1"),
    (lambda: Sinks(5, 3), "must not exceed window"),
    (lambda: Chunked(0, 1), "chunk size"),
    (lambda: Window(4, positions="slot"), "unknown positions"),
    (lambda: Sinks(1, 4, positions="group"), "needs a Segments policy"),
    (lambda: Segments({"a": "window"}), "expected Window"),
    (lambda: Segments({"a": Window(2)}, offsets={"b": 3}), "unknown segment 'b'"),
    (lambda: StreamingAttention(16, 4, kv_heads=3), "multiple of kv_heads"),
    (lambda: StreamingAttention(16, 4, encoding="xpos"), "unknown encoding"),
    (lambda: StreamingAttention(16, 4, cache="window"), "CachePolicy"),
])
def test_invalid_settings_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unknown_segment_is_refused_without_change():
    m = StreamingAttention(8, 2, cache=Segments({"a": Window(2), "b": Window(3)}))
    state = m.init_state(1)
    with pytest.raises(ValueError, match="pass segment"):
        m.step(torch.randn(1, 2, 8), state)
    with pytest.raises(ValueError, match="unknown segment 'c'"):
        m.step(torch.randn(1, 2, 8), state, segment="c")
    assert state["t_in"] == 0 and state["cache"]["pos"].shape[1] == 0


def test_chunked_delay_is_measured():
    m = StreamingAttention(8, 2, cache=Chunked(5, 1))
    rep = sw.verify(m, torch.randn(1, 40, 8), trials=5)
    assert rep.passed and rep.delay_frames == 4 == rep.measured_delay_frames


def test_review_mends():
    """Containers refuse [B, T, C] layers; odd head_dim with RoPE; empty streams; RoPE at 1e5."""
    with pytest.raises(ValueError, match="layout='bct'"):
        sw.Sequential(StreamingAttention(8, 2))
    with pytest.raises(ValueError, match="even head_dim"):
        StreamingAttention(6, 2, encoding="rope")
    s = StreamingAttention(8, 2).stream(2)
    assert s.close().shape == (2, 0, 8)
    torch.manual_seed(8)
    m = StreamingAttention(32, 2, cache=Window(8))  # distances only: the clock must not matter
    x = torch.randn(1, 20, 32)
    state = m.init_state(1)
    late = {**state, "t_in": 100_000}
    with torch.no_grad():
        a, _ = m.step(x, state)
        b, _ = m.step(x, late)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_retrieve_leaves_the_given_state_alone_and_bounds_its_store():
    from streamwise.attention import Retrieve

    m = StreamingAttention(8, 2, cache=Retrieve(1, page=4, window=6, n_sink=1, max_pages=3))
    state = m.init_state(1)
    with torch.no_grad():
        _, state = m.step(torch.randn(1, 40, 8), state)
        before = state["policy"]["last"].clone()
        m.step(torch.randn(1, 5, 8), state)
    assert torch.equal(state["policy"]["last"], before)
    assert sw.core.protocol.tree_nbytes(state) <= m.state_nbytes(1) + 512
    assert StreamingAttention(8, 2, cache=Retrieve(1)).state_nbytes(1) == 0  # unbounded store


def test_encoding_keyword_and_its_old_name():
    """``encoding=`` picks RoPE / ALiBi / none; the old ``positions=`` still works (same model)
    with a DeprecationWarning, and a policy's ``positions`` keeps its own meaning."""
    torch.manual_seed(0)
    new = StreamingAttention(8, 2, encoding="alibi", cache=Window(4))
    with pytest.warns(DeprecationWarning, match="renamed encoding"):
        old = StreamingAttention(8, 2, positions="alibi", cache=Window(4))
    old.load_state_dict(new.state_dict())
    x = torch.randn(2, 9, 8)
    assert old.kind == new.kind == "alibi" and torch.equal(old(x), new(x))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="unknown positions"):
        StreamingAttention(8, 2, positions="within_cache")  # a policy's word, not an encoding
    assert "encoding='alibi'" in repr(new)
