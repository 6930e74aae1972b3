"""StepPipeline: chunks at staggered steps in one batched call equal their steps run in turn."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.core.step_pipeline import StepPipeline


def _denoiser():
    torch.manual_seed(0)
    net = torch.nn.Linear(6, 6).double()
    levels = torch.linspace(1.0, 0.1, 8, dtype=torch.float64)

    def step(x, k):  # a step that depends on the row's own noise level
        return x - 0.3 * levels[k].view(-1, 1, 1) * torch.tanh(net(x))
    return step


@settings(max_examples=30, deadline=None)
@given(steps=st.integers(1, 8), chunks=st.integers(0, 9), batches=st.lists(
    st.integers(1, 3), min_size=9, max_size=9))
def test_pipelined_chunks_equal_their_steps_run_in_turn(steps, chunks, batches):
    step = _denoiser()
    gen = torch.Generator().manual_seed(steps * 10 + chunks)
    xs = [torch.randn(batches[i], 4, 6, generator=gen, dtype=torch.float64)
          for i in range(chunks)]
    pipe = StepPipeline(step, steps)
    out = [y for x in xs if (y := pipe.push(x)) is not None] + pipe.flush()
    assert len(out) == chunks
    for x, y in zip(xs, out):
        ref = x
        for k in range(steps):
            ref = step(ref, torch.full((len(x),), k))
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    # one call per push once full, and steps - 1 more to drain
    assert pipe.calls == (chunks + steps - 1 if chunks else 0)


def test_latency_is_steps_minus_one_pushes():
    pipe = StepPipeline(lambda x, k: x + 1, steps=4)
    outs = [pipe.push(torch.zeros(1, 2)) for _ in range(6)]
    assert [o is None for o in outs] == [True, True, True, False, False, False]
    assert float(outs[3].sum()) == 8.0  # 4 steps of +1 on 2 values


def test_bad_settings_and_shapes():
    with pytest.raises(ValueError, match="steps must be an integer"):
        StepPipeline(lambda x, k: x, 0)
    pipe = StepPipeline(lambda x, k: x, 3)
    pipe.push(torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"expected chunks of shape \[B, 2\]"):
        pipe.push(torch.zeros(1, 3))
    bad = StepPipeline(lambda x, k: x[:1], 2)
    with pytest.raises(ValueError, match="rows"):
        bad.push(torch.zeros(2, 2))
    assert not bad.flight and bad.calls == 0  # the failed push left nothing behind
