"""The live loop: input ingested with every call, output written meanwhile, one dual cache."""

from __future__ import annotations

import math

import pytest
import torch

from streamwise.live.loop import LiveLoop, dual_cache, run
from tests.hf.conftest import tiny


def _clock(step_s):
    """0 at the start, then each call starts where the last ended and lasts ``step_s``."""
    state = {"t": 0.0, "n": 0}

    def now():
        state["n"] += 1
        if state["n"] > 1 and state["n"] % 2 == 1:  # every call's end
            state["t"] += step_s
        return state["t"]
    return now


def test_every_arrived_token_is_taken_by_the_next_call_in_order():
    model = tiny("llama")
    tokens = list(torch.randint(0, 100, (40,), generator=torch.Generator().manual_seed(12)))
    tokens = [int(t) for t in tokens]
    loop = LiveLoop(model, [1, 2, 3])
    r = run(loop, tokens, rate=4.0, calls=12, clock=_clock(0.5))
    taken = [t for c in r.calls for t in c.ingested]
    assert taken == tokens[: len(taken)] and len(taken) == int(5.5 * 4) + 1  # by the last start
    assert [len(c.ingested) for c in r.calls[1:]] == [2] * 11  # 0.5 s x 4 tokens/s per call
    assert max(r.ingestion_lags()) <= 0.5 + 0.25 + 1e-9  # one call plus one token interval
    assert len(r.outputs) == 12 and loop.calls == 12


def test_with_nothing_evicted_the_loop_equals_one_forward_in_group_positions():
    model = tiny("llama")
    gen = torch.Generator().manual_seed(3)
    prompt, tokens = [5, 6], [int(t) for t in torch.randint(0, 100, (9,), generator=gen)]
    loop = LiveLoop(model, prompt, cache=dual_cache(model, 64, 64, offset=50))
    plan = [[tokens[0], tokens[1]], [], [tokens[2]], tokens[3:7], [], tokens[7:9]]
    outs = [loop.step(chunk) for chunk in plan]
    # the same tokens in the same order, each group counting on its own, causal
    ids, names = [], []
    pending = prompt
    for chunk, out in zip(plan, outs):
        ids += [*chunk, *pending]
        names += ["input"] * len(chunk) + ["output"] * len(pending)
        pending = [out]
    count = {"input": 0, "output": 50}
    pos = []
    for n in names:
        pos.append(count[n])
        count[n] += 1
    t = len(ids)
    causal = torch.full((t, t), -math.inf).triu(1)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), position_ids=torch.tensor([pos]),
                       attention_mask=causal[None, None]).logits[0]
    ends, at = [], 0
    for chunk in plan:
        at += len(chunk) + (len(prompt) if not ends else 1)
        ends.append(at - 1)
    assert [int(logits[e].argmax()) for e in ends] == outs


def test_the_dual_cache_stays_bounded_over_a_long_stream():
    model = tiny("llama")
    loop = LiveLoop(model, [1], cache=dual_cache(model, 16, 8, sinks=2, offset=200))
    gen = torch.Generator().manual_seed(4)
    most = 0
    for _ in range(60):
        loop.step([int(t) for t in torch.randint(0, 100, (3,), generator=gen)])
        most = max(most, loop.cache.stored_tokens())
    assert most <= loop.cache.policy.bound


def test_bad_arguments():
    model = tiny("llama")
    with pytest.raises(ValueError, match="at least one prompt token"):
        LiveLoop(model, [])
    with pytest.raises(ValueError, match="rate > 0"):
        run(LiveLoop(model, [1]), [1, 2], rate=0.0, calls=1)
