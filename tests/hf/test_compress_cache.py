"""Compress inside a transformers model: the pooled memory (keys as the model rotated them,
averaged; logit + log(rate) through the cache's mask) is the same for every chunking."""

from __future__ import annotations

import pytest
import torch

from streamwise.attention import Compress, Segments, Sinks, Window
from streamwise.hf import StreamingCache
from tests.hf.conftest import tiny

NAMES = (["input"] * 5 + ["output"] * 2 + ["input"] * 3 + ["output"] * 4) * 3  # 42 tokens


def _policy(pool: bool = True) -> Segments:
    rules = {"input": Sinks(1, 6, positions="absolute"), "output": Window(8)}
    if not pool:
        return Segments(rules, offsets={"output": 100})
    return Compress(rules, pool={"input": (2, 3)}, offsets={"output": 100})


def _run(model, ids, chunk: int, policy: Segments) -> tuple[torch.Tensor, StreamingCache]:
    cache, out = StreamingCache(model, policy), []
    with torch.no_grad():
        for i in range(0, ids.shape[1], chunk):
            n = min(chunk, ids.shape[1] - i)
            cache.segment = NAMES[i : i + n]
            out.append(model(input_ids=ids[:, i : i + n], past_key_values=cache,
                             attention_mask=cache.attention_mask(n, dtype=torch.float64),
                             position_ids=cache.position_ids(n)).logits)
            assert cache.stored_tokens() <= policy.bound
    return torch.cat(out, 1), cache


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_every_chunking_gives_the_one_call_logits(chunk):
    model = tiny("llama").double()
    ids = torch.randint(0, 100, (1, len(NAMES)), generator=torch.Generator().manual_seed(5))
    ref, _ = _run(model, ids, len(NAMES), _policy())
    got, cache = _run(model, ids, chunk, _policy())
    # eager attention takes its softmax in float32: agreement to 1e-6, as the group-positions test
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    layer = cache.layers[0]
    memory = layer.entries["seg"][0] == 2
    # 24 input tokens: sink 0, window 18..23, out(23) = (23 - 6 - 1 + 1) // 2 = 8 groups of 2;
    # the last 3 are kept, shown at their middle members 12, 14, 16
    assert layer.entries["lidx"][0][memory].tolist() == [12, 14, 16]


def test_the_memory_changes_what_the_model_says():
    model = tiny("llama").double()
    ids = torch.randint(0, 100, (1, len(NAMES)), generator=torch.Generator().manual_seed(5))
    with_memory, _ = _run(model, ids, 4, _policy())
    without, _ = _run(model, ids, 4, _policy(pool=False))
    early = 12  # before anything leaves the input window, the two agree
    torch.testing.assert_close(with_memory[:, :early], without[:, :early])
    assert (with_memory[:, -1] - without[:, -1]).abs().max() > 1e-4
