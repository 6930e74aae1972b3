"""Segments: each named stream keeps its own window; group positions count per segment."""

import torch

from streamwise.attention import Segments, Sinks, StreamingAttention, Window


def test_a_burst_of_frames_does_not_push_text_out():
    pol = Segments({"vision": Window(4), "text": Sinks(1, 3)})
    m = StreamingAttention(8, 2, cache=pol)
    state = m.init_state(1)
    _, state = m.step(torch.randn(1, 5, 8), state, segment="text")
    _, state = m.step(torch.randn(1, 100, 8), state, segment="vision")
    c = state["cache"]
    text = c["seg"][0] == 1
    assert c["lidx"][0][text].tolist() == [0, 2, 3, 4]  # sink + last window of the text
    assert c["lidx"][0][~text].tolist() == [96, 97, 98, 99]
    assert c["pos"].shape[1] <= pol.bound


def test_group_positions_count_per_segment():
    pol = Segments({"input": Window(8), "output": Window(8)}, offsets={"output": 500})
    m = StreamingAttention(8, 2, cache=pol)
    state = m.init_state(1)
    for seg in ["input", "input", "output", "input", "output"]:
        _, state = m.step(torch.randn(1, 2, 8), state, segment=seg)
    c = state["cache"]
    shown = pol.present(c)[0].tolist()
    assert shown == [0, 1, 2, 3, 500, 501, 4, 5, 502, 503]
    assert c["pos"][0].tolist() == list(range(10))  # arrival frames are kept as they are


def test_text_queries_see_frames_that_keep_arriving():
    """A text token asked after new frames arrived attends to those frames (not a stale view)."""
    torch.manual_seed(0)
    pol = Segments({"vision": Window(2), "text": Window(50)})
    m = StreamingAttention(8, 1, encoding="none", cache=pol).double()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    segs = ["text", "vision", "vision", "vision", "vision", "text"]
    out = m(x, segment=segs)
    x2 = x.clone()
    x2[:, 4] += 1.0  # change the newest frame: the last text token must notice
    x3 = x.clone()
    x3[:, 2] += 1.0  # change a frame out of vision's window: it must not
    assert not torch.allclose(m(x2, segment=segs)[:, 5], out[:, 5])
    torch.testing.assert_close(m(x3, segment=segs)[:, 5], out[:, 5])
