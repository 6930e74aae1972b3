"""SegmentMemory: the segment-level causal mask over variable-length, overlapping watch and think
segments, checked against a mask written out by hand, streamed under random chunkings, bounded."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.attention import SegmentMemory, StreamingAttention
from tests.strategies import chunkings


def _numbers(names: list[str]) -> list[tuple[bool, int]]:
    """(is a note, segment number) of each entry, counted the obvious way."""
    seen = {"watch": 0, "think": 0}
    out = []
    for n in names:
        kind = n.split("_")[0]
        out.append((kind == "think", seen[kind]))
        seen[kind] += n.endswith("_end")
    return out


def _mask_by_hand(names: list[str], watch: int | None, memory: int | None) -> torch.Tensor:
    big = 10**9
    w, m = watch or big, memory or big
    tags = _numbers(names)
    mask = torch.zeros(len(names), len(names), dtype=torch.bool)
    for i, (q_note, qs) in enumerate(tags):
        for j, (k_note, ks) in enumerate(tags[: i + 1]):
            if not k_note:
                mask[i, j] = qs - w < ks <= qs
            elif q_note:
                mask[i, j] = qs - m < ks <= qs
            else:
                mask[i, j] = qs - m <= ks < qs
    return mask


@st.composite
def conversations(draw: st.DrawFn, max_len: int = 40) -> list[str]:
    """Frames and notes interleaved at random, segments of random length; notes may be about the
    segment being watched (live commentary) or lag by any number of segments, never run ahead."""
    names: list[str] = []
    watched = thought = 0
    for _ in range(draw(st.integers(1, max_len))):
        if thought <= watched and draw(st.booleans()):
            end = draw(st.integers(0, 3)) == 0
            names.append("think_end" if end else "think")
            thought += end
        else:
            end = draw(st.integers(0, 3)) == 0
            names.append("watch_end" if end else "watch")
            watched += end
    return names


def _reference(m: StreamingAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plain masked multi-head attention (no positions), written out."""
    b, t, _ = x.shape
    h, d = m.heads, m.head_dim
    q = m.q_proj(x).view(b, t, h, d).transpose(1, 2)
    k = m.k_proj(x).view(b, t, h, d).transpose(1, 2)
    v = m.v_proj(x).view(b, t, h, d).transpose(1, 2)
    s = (q @ k.mT / math.sqrt(d)).masked_fill(~mask, -math.inf)
    o = torch.softmax(s, -1) @ v
    return m.out_proj(o.transpose(1, 2).reshape(b, t, h * d))


@settings(max_examples=40, deadline=None)
@given(names=conversations(), watch=st.sampled_from([1, 2, None]),
       memory=st.sampled_from([1, 3, None]))
def test_offline_equals_the_mask_written_by_hand(names, watch, memory):
    torch.manual_seed(0)
    m = StreamingAttention(8, 2, encoding="none",
                           cache=SegmentMemory(watch=watch, memory=memory)).double()
    x = torch.randn(2, len(names), 8, dtype=torch.float64)
    with torch.no_grad():
        got = m(x, segment=names)
        want = _reference(m, x, _mask_by_hand(names, watch, memory))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), watch=st.sampled_from([1, 2, None]), memory=st.sampled_from([1, 2, None]),
       encoding=st.sampled_from(["rope", "alibi", "none"]),
       positions=st.sampled_from(["absolute", "within_cache"]))
def test_streams_like_offline_under_random_chunkings(data, watch, memory, encoding, positions):
    names = data.draw(conversations())
    sizes = data.draw(chunkings(len(names)))
    torch.manual_seed(1)
    pol = SegmentMemory(watch=watch, memory=memory, positions=positions)
    m = StreamingAttention(8, 2, encoding=encoding, cache=pol).double().eval()
    x = torch.randn(3, len(names), 8, dtype=torch.float64)
    with torch.no_grad():
        ref = m(x, segment=names)
        state, ys, at = m.init_state(3, dtype=torch.float64), [], 0
        for n in sizes:
            y, state = m.step(x[:, at : at + n], state, segment=names[at : at + n])
            ys.append(y)
            at += n
    torch.testing.assert_close(torch.cat(ys, 1), ref, rtol=1e-10, atol=1e-10)


def test_a_note_does_not_read_the_next_segment_that_already_arrived():
    torch.manual_seed(2)
    names = ["watch", "watch_end", "watch", "watch", "think", "think_end"]
    m = StreamingAttention(8, 2, encoding="none", cache=SegmentMemory(watch=1)).double()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    x_next, x_own = x.clone(), x.clone()
    x_next[:, 2:4] += 1.0  # frames of segment 1, arrived before the notes about segment 0
    x_own[:, 1] += 1.0  # a frame of segment 0
    with torch.no_grad():
        out = m(x, segment=names)
        torch.testing.assert_close(m(x_next, segment=names)[:, 4:], out[:, 4:])
        assert not torch.allclose(m(x_own, segment=names)[:, 4:], out[:, 4:])


def test_frames_are_dropped_and_notes_kept_as_memory():
    """60 segments of 5-9 frames and 2-4 notes, thinking one segment behind: the cache keeps the
    frames of the segments still watched or thought about plus the notes of ``memory`` ones."""
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(0)
    pol = SegmentMemory(watch=1, memory=3)
    m = StreamingAttention(8, 2, cache=pol)
    state, most, names_all = m.init_state(1), 0, []
    pending: list[str] = []
    for _ in range(60):
        n_frames = int(torch.randint(5, 10, (1,), generator=gen))
        frames = ["watch"] * (n_frames - 1) + ["watch_end"]
        # the notes about the previous segment arrive interleaved with this segment's frames
        merged = [*frames]
        for i, note in enumerate(pending):
            merged.insert(2 * i + 1, note)
        n_notes = int(torch.randint(2, 5, (1,), generator=gen))
        pending = ["think"] * (n_notes - 1) + ["think_end"]
        with torch.no_grad():
            _, state = m.step(torch.randn(1, len(merged), 8), state, segment=merged)
        names_all += merged
        most = max(most, state["cache"]["pos"].shape[1])
    # at most two segments of frames (watched + thought about) and 3 segments of notes + one open
    assert most <= 2 * 9 + 4 * 4
    seg_of = state["cache"]["lidx"][0]
    notes = state["cache"]["seg"][0] >= 2
    assert seg_of[notes].unique().numel() <= 4
    assert seg_of[~notes].unique().numel() <= 2


def test_bad_settings_and_names_are_refused():
    with pytest.raises(ValueError, match="absolute' or 'within_cache"):
        SegmentMemory(positions="group")
    with pytest.raises(ValueError, match="watch must be an integer >= 1"):
        SegmentMemory(watch=0)
    m = StreamingAttention(8, 2, cache=SegmentMemory())
    state = m.init_state(1)
    with pytest.raises(ValueError, match="unknown segment 'vision'"):
        m.step(torch.randn(1, 2, 8), state, segment="vision")
    with pytest.raises(ValueError, match="segments"):
        m.step(torch.randn(1, 2, 8), state)
