"""PropagatedMemory (VideoStreaming): clip-wise encoding with a propagated memory streams exactly
like its offline forward, carries the past forward, and selection picks the question's clips."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from streamwise.models.propagated_memory import PropagatedMemory, select
from tests.strategies import (
    assert_state_keeps_its_declaration,
    assert_streams_like_offline,
    chunkings,
)

T = 45  # 5 whole clips of 8 and 5 frames that never make a clip


def _model() -> PropagatedMemory:
    torch.manual_seed(0)
    return PropagatedMemory(6, dim=16, clip=8, memory=3, heads=2, layers=2).double().eval()


@given(sizes=chunkings(T), batch=st.sampled_from([1, 3]))
def test_streaming_equals_offline_for_any_chunking(sizes, batch):
    x = torch.randn(batch, T, 6, dtype=torch.float64)
    y = assert_streams_like_offline(_model(), x, sizes)
    assert y.shape == (batch, T // 8, 3 * 16)


def test_the_state_keeps_its_declaration():
    assert_state_keeps_its_declaration(_model(), torch.randn(2, T, 6, dtype=torch.float64),
                                       [0, 1, 7, 3, 20, 14])


def test_the_memory_carries_the_past_and_never_the_future():
    m = _model()
    x = torch.randn(1, 40, 6, dtype=torch.float64)
    with torch.no_grad():
        base = m(x)
        early, late = x.clone(), x.clone()
        early[:, 3] += 1.0  # a frame of clip 0
        late[:, 20] += 1.0  # a frame of clip 2
        y_early, y_late = m(early), m(late)
    assert (y_early[:, 4] - base[:, 4]).abs().max() > 1e-6  # clip 4's memory still knows clip 0
    torch.testing.assert_close(y_late[:, :2], base[:, :2])  # clips 0, 1 are not told clip 2
    assert (y_late[:, 2:] - base[:, 2:]).abs().max() > 1e-6


def test_select_returns_the_most_similar_clips_in_time_order():
    mem = torch.zeros(1, 5, 2, 3)  # 5 clips, 2 tokens of 3 channels
    mem[0, :, :, 0] = torch.tensor([0.1, 1.0, 0.2, 0.9, 0.0])[:, None]
    mem[0, :, :, 1] = 0.5
    idx, picked = select(mem.flatten(2), torch.tensor([[1.0, 0.0, 0.0]]), k=2)
    assert idx.tolist() == [[1, 3]]  # the two leaning on channel 0, in time order
    torch.testing.assert_close(picked, mem[:, [1, 3]])


def test_bad_input_is_refused_with_the_expected_shape():
    m = _model()
    with pytest.raises(ValueError, match=r"expected frames \[B, T, 6\]"):
        m(torch.randn(1, 8, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="k must be in"):
        select(torch.zeros(1, 2, 6), torch.zeros(1, 3), k=3)
    with pytest.raises(ValueError, match="dim .* multiple of heads"):
        PropagatedMemory(6, dim=10, heads=4)
    stream = m.stream(1, dtype=torch.float64)
    with pytest.raises(ValueError):
        stream.push(torch.randn(1, 4, 7, dtype=torch.float64))
    stream.push(torch.randn(1, 4, 6, dtype=torch.float64))  # the rejected chunk changed nothing
    assert stream.push(torch.randn(1, 4, 6, dtype=torch.float64)).shape == (1, 1, 48)
