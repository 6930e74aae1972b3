"""MovingBuffer: StreamDiT's moving noise buffer driven push by push equals the same schedule
computed on the whole noise tensor, with and without a memory; bounded; clear errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.attention.cache.anchor import AnchorMemory
from streamwise.core.moving_buffer import (
    MovingBuffer,
    flow_times,
    moving_buffer_offline,
    schedule,
)


def _velocity(dim: int = 5):
    """A velocity that mixes frames across the whole buffer (like attention) and reads t and the
    memory, so any slip in levels, order or context changes the result."""
    torch.manual_seed(0)
    net = torch.nn.Linear(dim, dim).double()

    def v(x, t, context):
        mixed = x + 0.3 * x.mean(1, keepdim=True) + 0.2 * torch.roll(x, 1, 1)
        out = torch.tanh(net(mixed)) * (1 + t.view(1, -1, 1))
        if context is not None:
            frames, kind, _ = context
            out = out + 0.1 * (frames * (1 + kind.view(1, -1, 1))).mean(1, keepdim=True)
        return out
    return v


@settings(max_examples=30, deadline=None)
@given(steps=st.integers(1, 6), n_chunks=st.integers(0, 9), chunk=st.integers(1, 4),
       batch=st.integers(1, 3), memory=st.sampled_from([None, (1, 0), (1, 1), (2, 1)]))
def test_pushes_equal_the_schedule_computed_offline(steps, n_chunks, chunk, batch, memory):
    v, times = _velocity(), flow_times(steps)
    gen = torch.Generator().manual_seed(7)
    noise = torch.randn(batch, n_chunks * chunk, 5, generator=gen, dtype=torch.float64)
    make = (lambda: None) if memory is None else (
        lambda: AnchorMemory(chunk, recent=memory[0], anchor=memory[1]))
    ref = moving_buffer_offline(v, times, noise, chunk, make())
    buf = MovingBuffer(v, times, make())
    chunks = [noise[:, c * chunk:(c + 1) * chunk] for c in range(n_chunks)]
    out = [y for c in chunks if (y := buf.push(c)) is not None] + buf.flush()
    assert len(out) == n_chunks and buf.calls == len(schedule(n_chunks, steps))
    if n_chunks:
        torch.testing.assert_close(torch.cat(out, 1), ref, rtol=1e-12, atol=1e-12)


def test_schedule_staggers_levels_and_one_call_per_chunk():
    assert schedule(3, 2) == [[(0, 0)], [(0, 1), (1, 0)], [(1, 1), (2, 0)], [(2, 1)]]
    assert schedule(0, 4) == []


def test_exact_velocity_lands_on_its_target_and_prime_continues():
    """With the exact flow to a point mass, ``v = (x1 - x) / (1 - t)``, every Euler step stays
    on the straight path, so each chunk, primed ones included, ends exactly at ``x1``."""
    x1 = torch.randn(1, 3, 2, dtype=torch.float64)
    buf = MovingBuffer(lambda x, t, c: (x1.repeat(1, x.shape[1] // 3, 1) - x)
                       / (1 - t).view(1, -1, 1), flow_times(4))
    buf.prime([x1, x1, x1], [torch.randn(1, 3, 2, dtype=torch.float64) for _ in range(3)])
    outs = [buf.push(torch.randn(1, 3, 2, dtype=torch.float64)) for _ in range(8)]
    assert all(o is not None for o in outs)  # primed chunks leave at once: no warm-up gap
    for o in outs + buf.flush():
        torch.testing.assert_close(o, x1, rtol=1e-12, atol=1e-12)


def test_state_is_bounded_over_a_long_run():
    v, steps, chunk = _velocity(), 4, 3
    mem = AnchorMemory(chunk, recent=1, anchor=1)
    buf = MovingBuffer(v, flow_times(steps), mem)
    sizes = []
    with torch.no_grad():
        for _ in range(300):
            buf.push(torch.randn(2, chunk, 5, dtype=torch.float64))
            sizes.append((buf.nbytes(), mem.nbytes()))
    assert max(s for s, _ in sizes) == steps * 2 * chunk * 5 * 8 - 2 * chunk * 5 * 8
    assert max(m for _, m in sizes) == 2 * chunk * (2 * 5 * 8 + 8)


def test_bad_input_is_refused():
    v = _velocity()
    with pytest.raises(ValueError, match="times must be a 1-D tensor of at least 2"):
        MovingBuffer(v, torch.tensor([0.0]))
    with pytest.raises(ValueError, match="times must increase strictly"):
        MovingBuffer(v, torch.tensor([0.0, 0.5, 0.5, 1.0]))
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        flow_times(0)
    buf = MovingBuffer(v, flow_times(3))
    with pytest.raises(ValueError, match=r"expected a noise chunk \[B, T, ...\]"):
        buf.push(torch.zeros(3))
    buf.push(torch.zeros(1, 2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"expected chunks of shape \[1, T, 5\]"):
        buf.push(torch.zeros(1, 2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="prime needs an empty buffer"):
        buf.prime([], [])
    with pytest.raises(ValueError, match="prime takes n < 3 clean chunks"):
        MovingBuffer(v, flow_times(3)).prime([torch.zeros(1, 2, 5)] * 3, [torch.zeros(1, 2, 5)] * 3)
    bad = MovingBuffer(lambda x, t, c: x[:, :1], flow_times(2))
    with pytest.raises(ValueError, match=r"velocity returned \(1, 1, 5\) for a buffer"):
        bad.push(torch.zeros(1, 2, 5))
    assert not bad.pipe.flight  # the failed push left nothing behind
