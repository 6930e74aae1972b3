"""Within-cache positions in multi-token chunks: every query sees its sinks at its own slots."""

from __future__ import annotations

import pytest
import torch

from streamwise.attention import Segments, Sinks, Window
from streamwise.attention.cache import entries as E
from streamwise.hf import StreamingCache
from streamwise.hf.slots import slot_layout
from tests.hf.conftest import ARCHS, tiny


def _sharp(arch):
    """Attention sharp enough that a sink shown one slot off moves the logits."""
    model = tiny(arch)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("q_proj", "k_proj", "query_key_value")):
                p.mul_(4.0)
    return model


def _run(model, ids, policy, chunk):
    cache, out = StreamingCache(model, policy), []
    with torch.no_grad():
        for i in range(0, ids.shape[1], chunk):
            part = ids[:, i : i + chunk]
            mask = cache.attention_mask(part.shape[1]) if chunk > 1 else None
            out.append(model(input_ids=part, past_key_values=cache, attention_mask=mask).logits)
    return torch.cat(out, 1), cache


@pytest.mark.parametrize("arch", ARCHS)
def test_chunks_with_the_mask_equal_one_token_at_a_time(arch):
    model = _sharp(arch)
    ids = torch.randint(0, 100, (1, 70), generator=torch.Generator().manual_seed(5))
    one, _ = _run(model, ids, Sinks(3, 10), 1)
    for chunk in (8, 13):
        many, cache = _run(model, ids, Sinks(3, 10), chunk)
        torch.testing.assert_close(many, one, rtol=1e-5, atol=1e-5)
        assert cache.stored_tokens() == 3 + 9
    absolute, _ = _run(model, ids, Sinks(3, 10, positions="absolute"), 1)
    assert (absolute - one).abs().max() > 1e-2  # within-cache slots are not absolute positions


def test_segments_with_within_cache_slots_chunked_equal_one_at_a_time():
    model = _sharp("llama")
    ids = torch.randint(0, 100, (1, 48), generator=torch.Generator().manual_seed(6))
    names = (["frames"] * 5 + ["text"] * 3) * 6

    def run(chunk):
        pol = Segments({"frames": Window(6), "text": Sinks(2, 9)}, positions="within_cache")
        cache, out = StreamingCache(model, pol), []
        with torch.no_grad():
            for i in range(0, 48, chunk):
                cache.segment = names[i : i + chunk]
                mask = cache.attention_mask(len(cache.segment))
                out.append(model(input_ids=ids[:, i : i + chunk], past_key_values=cache,
                                 attention_mask=mask).logits)
        return torch.cat(out, 1)

    torch.testing.assert_close(run(8), run(1), rtol=1e-5, atol=1e-5)


def test_a_chunk_that_needs_copies_without_the_mask_is_refused_and_changes_nothing():
    model = tiny("llama")
    ids = torch.randint(0, 100, (1, 40), generator=torch.Generator().manual_seed(7))
    cache = StreamingCache(model, Sinks(2, 6))
    with torch.no_grad():
        for i in range(20):  # one at a time: the window has left the sinks
            model(input_ids=ids[:, i : i + 1], past_key_values=cache)
        kept, seen = cache.stored_tokens(), cache.get_seq_length()
        with pytest.raises(ValueError, match=r"attention_mask=cache.attention_mask\(4\)"):
            model(input_ids=ids[:, 20:24], past_key_values=cache)
        assert (cache.stored_tokens(), cache.get_seq_length()) == (kept, seen)
        # the same chunk with the mask goes through and equals one token at a time
        ref = StreamingCache(model, Sinks(2, 6))
        for i in range(24):
            last = model(input_ids=ids[:, i : i + 1], past_key_values=ref).logits
        got = model(input_ids=ids[:, 20:24], past_key_values=cache,
                    attention_mask=cache.attention_mask(4)).logits
        torch.testing.assert_close(got[:, -1], last[:, -1], rtol=1e-5, atol=1e-5)


def test_the_layout_by_hand():
    """Sinks(2, 4) after 8 tokens holds 0, 1, 5, 6, 7; then tokens 8, 9 arrive together.
    Query 8 sees 0 1 | 5 6 7 8 (window 5..8): sinks at slots 0, 1 and itself at slot 5, so sink s
    sits at 8 - 5 + s = 3 + s (shift 3); query 9 sees 0 1 | 6 7 8 9: sink s at 4 + s (shift 4).
    Entry 5 is seen by query 8 only, at its own position (shift 0)."""
    pol = Sinks(2, 4)
    ps = pol.init(1, 1, 1, "cpu", torch.float32)
    rows = pol.arrivals(0, torch.zeros(10, dtype=torch.long), ps, 1, torch.float32)
    kv = torch.zeros(1, 1, 10, 1)
    allk = {**rows, "k": kv, "v": kv}
    cache = E.select(allk, torch.tensor([[p in (0, 1, 5, 6, 7, 8, 9) for p in range(10)]]))
    new = {f: t[:, 8:] for f, t in rows.items()}
    idx, shift, mask = slot_layout(pol, cache, new, ps)
    # entries (by index into the cache 0 1 5 6 7 8 9): each sink twice, the rest once
    assert idx.tolist() == [0, 0, 1, 1, 2, 3, 4, 5, 6]
    assert shift.tolist() == [3, 4, 3, 4, 0, 0, 0, 0, 0]
    assert mask[0].int().tolist() == [[1, 0, 1, 0, 1, 1, 1, 1, 0],
                                       [0, 1, 0, 1, 0, 1, 1, 1, 1]]
