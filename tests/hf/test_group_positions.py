"""Group positions inside a transformers model: input and output tokens count apart, checked
against one forward with positions and mask written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from streamwise.attention import Segments, Sinks, Window
from streamwise.hf import StreamingCache
from tests.hf.conftest import tiny

NAMES = (["input"] * 5 + ["output"] * 2 + ["input"] * 3 + ["output"] * 4) * 3  # 42 tokens
OFFSET = 100


def _policy():
    return Segments({"input": Window(6), "output": Sinks(1, 8, positions="absolute")},
                    offsets={"output": OFFSET})


def _by_hand(names):
    """Group positions and the visibility of each key to each query, counted by hand."""
    count = {"input": 0, "output": 0}
    pos, lidx = [], []
    for n in names:
        lidx.append(count[n])
        pos.append(count[n] + (OFFSET if n == "output" else 0))
        count[n] += 1
    t = len(names)
    mask = torch.zeros(t, t, dtype=torch.bool)
    for i in range(t):
        latest = {s: max([lidx[j] for j in range(i + 1) if names[j] == s], default=-1)
                  for s in ("input", "output")}
        for j in range(i + 1):
            s = names[j]
            if s == "input":  # Window(6): the last 6 of the input segment as of query i
                mask[i, j] = lidx[j] > latest[s] - 6
            else:  # Sinks(1, 8): the first output token and the last 8
                mask[i, j] = lidx[j] < 1 or lidx[j] > latest[s] - 8
    return torch.tensor([pos]), mask


def test_the_positions_count_per_segment():
    pos, _ = _by_hand(NAMES[:14])
    assert pos[0].tolist() == [0, 1, 2, 3, 4, 100, 101, 5, 6, 7, 102, 103, 104, 105]
    model = tiny("llama")
    cache = StreamingCache(model, _policy())
    cache.segment = NAMES[:14]
    assert cache.position_ids(14).tolist() == pos.tolist()


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_streaming_with_group_positions_equals_the_hand_written_forward(chunk):
    model = tiny("llama").double()
    ids = torch.randint(0, 100, (1, len(NAMES)), generator=torch.Generator().manual_seed(11))
    pos, mask = _by_hand(NAMES)
    with torch.no_grad():
        add = torch.zeros(mask.shape, dtype=torch.float64).masked_fill(~mask, -math.inf)
        ref = model(input_ids=ids, position_ids=pos, attention_mask=add[None, None]).logits
        cache, out = StreamingCache(model, _policy()), []
        for i in range(0, len(NAMES), chunk):
            n = min(chunk, len(NAMES) - i)
            cache.segment = NAMES[i : i + n]
            out.append(model(input_ids=ids[:, i : i + n], past_key_values=cache,
                             attention_mask=cache.attention_mask(n, dtype=torch.float64),
                             position_ids=cache.position_ids(n)).logits)
    torch.testing.assert_close(torch.cat(out, 1), ref, rtol=1e-6, atol=1e-6)
    plain = model(input_ids=ids, attention_mask=add[None, None]).logits  # arrival positions
    assert (plain - ref).abs().max() > 1e-3  # the group positions do change the outputs


def test_a_group_call_without_position_ids_is_refused_before_the_cache_changes():
    model = tiny("llama")
    cache = StreamingCache(model, _policy())
    cache.segment = "input"
    with torch.no_grad():
        model(input_ids=torch.randint(0, 100, (1, 4)), past_key_values=cache,
              attention_mask=cache.attention_mask(4), position_ids=cache.position_ids(4))
        with pytest.raises(ValueError, match=r"position_ids=cache.position_ids\(2\)"):
            model(input_ids=torch.randint(0, 100, (1, 2)), past_key_values=cache,
                  attention_mask=cache.attention_mask(2))
    assert cache.get_seq_length() == 4
    with pytest.raises(ValueError, match="position_ids are for positions='group'"):
        StreamingCache(model, Window(8)).position_ids(1)
