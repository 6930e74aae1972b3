"""Compress: what leaves a segment's window is pooled into a bounded memory; streaming equals the
offline forward for every chunking, and pooling identical entries is exact."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from streamwise.attention import Compress, Full, Segments, Sinks, StreamingAttention, Window
from tests.strategies import assert_state_keeps_its_declaration, chunkings

T = 48


def _policy(offsets: bool = True) -> Compress:
    return Compress({"input": Sinks(2, 6), "output": Window(4)}, pool={"input": (3, 2)},
                    positions="group", offsets={"output": 100} if offsets else None)


def _stream(m: StreamingAttention, x: torch.Tensor, names: list[str], sizes: list[int]
            ) -> tuple[torch.Tensor, dict]:
    state, ys, p = m.init_state(x.shape[0], dtype=x.dtype), [], 0
    for n in sizes:
        y, state = m.step(x[:, p:p + n], state, segment=names[p:p + n])
        ys.append(y)
        p += n
        assert state["cache"]["pos"].shape[1] <= m.policy.bound
    return torch.cat(ys, 1), state


@given(sizes=chunkings(T), names=st.lists(st.sampled_from(["input", "output"]), min_size=T,
                                          max_size=T), batch=st.sampled_from([1, 3]),
       encoding=st.sampled_from(["rope", "none"]))
def test_streaming_equals_offline_for_any_chunking(sizes, names, batch, encoding):
    torch.manual_seed(0)
    m = StreamingAttention(8, 2, encoding=encoding, cache=_policy()).double().eval()
    x = torch.randn(batch, T, 8, dtype=torch.float64)
    with torch.no_grad():
        ref = m(x, segment=names)
        y, _ = _stream(m, x, names, sizes)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)


def test_the_memory_holds_the_last_groups_at_their_middle_members():
    m = StreamingAttention(8, 2, cache=_policy())
    names = ["input"] * 32
    _, state = _stream(m, torch.randn(1, 32, 8), names, [5, 27])
    c = state["cache"]
    # input 0..31: sinks 0, 1; window 26..31; out(31) = (31 - 6 - 2 + 1) // 3 = 8 groups of 3
    # from index 2; the last 2 slots are groups 6, 7 shown at their middles 21 and 24
    raw, memory = c["seg"][0] == 0, c["seg"][0] == 2
    assert c["lidx"][0][raw].tolist() == [0, 1, 26, 27, 28, 29, 30, 31]
    assert c["lidx"][0][memory].tolist() == [21, 24]
    assert torch.allclose(c["bias"][0][memory], torch.log(torch.tensor(3.0)))


def test_pooling_identical_entries_is_exact():
    """Groups of 3 equal frames: pooled, each is one key with log 3 added, so where no group is
    half out of the window, outputs equal full attention's."""
    torch.manual_seed(1)
    w, r = 4, 3
    groups = torch.randn(1, 12, 8, dtype=torch.float64)
    x = groups.repeat_interleave(r, 1)  # 36 frames, each group of 3 equal
    pol = Compress({"main": Window(w)}, pool={"main": (r, 100)}, positions="absolute")
    m = StreamingAttention(8, 2, encoding="none", cache=pol).double().eval()
    full = StreamingAttention(8, 2, encoding="none", cache=Full()).double().eval()
    full.load_state_dict(m.state_dict())
    with torch.no_grad():
        y, ref = m(x), full(x)
    whole = [q for q in range(36) if (q - w + 1) % r == 0 and q >= w]  # no member in the gap
    assert len(whole) >= 5
    torch.testing.assert_close(y[:, whole], ref[:, whole], rtol=1e-12, atol=1e-12)
    plain = StreamingAttention(8, 2, encoding="none", cache=Window(w)).double().eval()
    plain.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert (plain(x)[:, whole] - ref[:, whole]).abs().max() > 1e-3  # the window alone is not


def test_what_left_the_window_still_counts_until_it_leaves_the_memory():
    torch.manual_seed(2)
    names = ["input"] * 40
    x = torch.randn(1, 40, 8, dtype=torch.float64)
    m = StreamingAttention(8, 2, cache=_policy()).double().eval()
    plain = StreamingAttention(8, 2, cache=Segments(
        {"input": Sinks(2, 6), "output": Window(4)}, offsets={"output": 100})).double().eval()
    plain.load_state_dict(m.state_dict())
    with torch.no_grad():
        base, base_plain = m(x, segment=names), plain(x, segment=names)
        # input 39: out(39) = 10 groups, memory = groups 8, 9 = indices 26..31; window 34..39
        for frame, seen in [(28, True), (20, False)]:
            x2 = x.clone()
            x2[:, frame] += 1.0
            moved = (m(x2, segment=names)[:, 39] - base[:, 39]).abs().max() > 1e-6
            assert bool(moved) == seen, frame
            assert torch.allclose(plain(x2, segment=names)[:, 39], base_plain[:, 39])


def test_the_state_keeps_its_declaration():
    pol = Compress({"main": Sinks(1, 5)}, pool={"main": (2, 3)}, positions="absolute")
    m = StreamingAttention(8, 2, cache=pol)
    assert_state_keeps_its_declaration(m, torch.randn(2, 30, 8), [0, 1, 7, 2, 20])


def test_bad_settings_and_the_memory_segment_are_refused():
    rules = {"input": Sinks(2, 6), "output": Window(4)}
    with pytest.raises(ValueError, match="unknown segment 'text'"):
        Compress(rules, pool={"text": (3, 2)})
    with pytest.raises(ValueError, match="rate must be an integer >= 1"):
        Compress(rules, pool={"input": (0, 2)})
    with pytest.raises(ValueError, match="expected \\(rate, slots\\)"):
        Compress(rules, pool={"input": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="within_cache"):
        Compress(rules, pool={"input": (3, 2)}, positions="within_cache")
    m = StreamingAttention(8, 2, cache=_policy())
    state = m.init_state(1)
    with pytest.raises(ValueError, match="takes no frames"):
        m.step(torch.randn(1, 2, 8), state, segment="input:memory")
