"""The ring-buffer layer: one-token steps copy nothing and equal the generic entries path."""

from __future__ import annotations

import pytest
import torch

from streamwise.attention import Sinks, Window
from streamwise.hf import StreamingCache
from streamwise.hf.ring import RingLayer
from tests.hf.conftest import ARCHS, tiny

POLICIES = [lambda: Sinks(3, 9), lambda: Sinks(3, 9, positions="absolute"), lambda: Window(7)]


def _mixed(model, ids, cache):
    """A prefill chunk, 25 single tokens, a chunk of 6, then single tokens to the end."""
    plan = [5] + [1] * 25 + [6] + [1] * (ids.shape[1] - 36)
    out, at = [], 0
    with torch.no_grad():
        for n in plan:
            part = ids[:, at : at + n]
            mask = cache.attention_mask(n, dtype=torch.float64) if n > 1 else None
            out.append(model(input_ids=part, past_key_values=cache, attention_mask=mask).logits)
            at += n
    return torch.cat(out, 1)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("make", POLICIES, ids=["sinks", "sinks-absolute", "window"])
def test_ring_equals_the_generic_path(arch, make):
    model = tiny(arch).double()
    ids = torch.randint(0, 100, (2, 60), generator=torch.Generator().manual_seed(8))
    ring = StreamingCache(model, make())
    assert isinstance(ring.layers[0], RingLayer)
    got = _mixed(model, ids, ring)
    want = _mixed(model, ids, StreamingCache(model, make(), ring=False))
    # keys in ring order instead of arrival order; the models' eager softmax runs in float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert ring.stored_tokens() == make().bound


def test_one_token_steps_write_into_one_buffer():
    model = tiny("llama")
    cache = StreamingCache(model, Sinks(2, 6))
    ids = torch.randint(0, 100, (1, 30), generator=torch.Generator().manual_seed(9))
    ptrs = set()
    with torch.no_grad():
        model(input_ids=ids[:, :1], past_key_values=cache)
        for i in range(1, 30):
            model(input_ids=ids[:, i : i + 1], past_key_values=cache)
            ptrs.add(cache.layers[0].keys.data_ptr())
    assert len(ptrs) == 1  # the same storage every step: nothing reallocated or concatenated
    assert cache.layers[0].keys.shape[-2] == 8 and cache.stored_tokens() == 7
    layer = cache.layers[0]
    assert cache.nbytes() == 2 * sum(layer._ring[f].numel() * 4 for f in ("k", "v", "raw"))


def test_beam_reordering_and_reset_leave_the_ring_consistent():
    model = tiny("qwen2")
    ids = torch.randint(0, 100, (2, 20), generator=torch.Generator().manual_seed(10))
    a, b = StreamingCache(model, Sinks(2, 5)), StreamingCache(model, Sinks(2, 5), ring=False)
    with torch.no_grad():
        for c in (a, b):
            for i in range(14):
                model(input_ids=ids[:, i : i + 1], past_key_values=c)
            c.reorder_cache(torch.tensor([1, 1]))
        for i in range(14, 20):
            la = model(input_ids=ids[:, i : i + 1], past_key_values=a).logits
            lb = model(input_ids=ids[:, i : i + 1], past_key_values=b).logits
            torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-5)
    a.reset()
    assert a.get_seq_length() == 0 and a.stored_tokens() == 0
