"""Window and Sinks: which entries survive, and the bound."""

import torch

from streamwise.attention import Sinks, StreamingAttention, Window


def _positions_after(policy, frames, chunk):
    m = StreamingAttention(8, 2, cache=policy)
    state = m.init_state(1)
    for _ in range(frames // chunk):
        _, state = m.step(torch.randn(1, chunk, 8), state)
    return state["cache"]["pos"][0].tolist()


def test_window_keeps_the_last_n_minus_1():
    assert _positions_after(Window(5), 40, 3) == [35, 36, 37, 38]
    assert _positions_after(Window(1), 40, 4) == []


def test_sinks_keep_the_first_frames_and_the_window():
    assert _positions_after(Sinks(4, 6), 60, 7) == [0, 1, 2, 3, 51, 52, 53, 54, 55]
    assert Sinks(4, 6).bound == 9
