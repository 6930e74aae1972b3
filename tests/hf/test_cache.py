"""streamwise policies as transformers caches: exact where nothing is evicted, bounded otherwise,
StreamingLLM positions where asked."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, CacheLayerMixin

from streamwise.attention import LinearAbsorb, Merge, Segments, SinkRefresh, Sinks, Window
from streamwise.hf import StreamingCache
from streamwise.hf.rope import rerotate
from tests.hf.conftest import ARCHS, tiny


def _loop(model, ids, cache, chunk=1, masks=False):
    """Manual loop: feed ``ids`` in chunks, return the logits of every token."""
    out = []
    with torch.no_grad():
        for i in range(0, ids.shape[1], chunk):
            part = ids[:, i : i + chunk]
            kw = {"attention_mask": cache.attention_mask(part.shape[1])} if masks and i else {}
            out.append(model(input_ids=part, past_key_values=cache, **kw).logits)
    return torch.cat(out, 1)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("positions", ["absolute", "within_cache"])
def test_window_larger_than_text_equals_dynamic_cache_exactly(arch, positions):
    model = tiny(arch)
    ids = torch.randint(0, 100, (2, 40), generator=torch.Generator().manual_seed(1))
    ref = _loop(model, ids, DynamicCache(config=model.config), chunk=7)
    got = _loop(model, ids, StreamingCache(model, Sinks(4, 64, positions=positions)), chunk=7)
    assert torch.equal(got, ref)
    g_ref = model.generate(ids[:, :5], max_new_tokens=20, do_sample=False)
    g = model.generate(ids[:, :5], max_new_tokens=20, do_sample=False,
                       past_key_values=StreamingCache(model, Window(64)))
    assert torch.equal(g, g_ref)


class SlotSinkLayer(CacheLayerMixin):
    """StreamingLLM written the direct way, independently of streamwise's policies: the query sits
    at slot ``kept`` (the model's default positions when ``get_seq_length`` is the kept count),
    and every kept key is turned to its slot ``0..n-1`` before attention."""

    is_sliding = is_compileable = is_croppable = False

    def __init__(self, n_sink, window, inv_freq):
        super().__init__()
        self.n_sink, self.window, self.inv_freq = n_sink, window, inv_freq

    def lazy_initialization(self, k, v, *args):
        self.keys, self.values = k[..., :0, :], v[..., :0, :]
        self.rot = torch.zeros(0, dtype=torch.long)  # position each stored key is rotated at
        self.is_initialized = True

    def update(self, k, v, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(k, v)
        n_old = self.keys.shape[-2]
        keys, values = torch.cat([self.keys, k], -2), torch.cat([self.values, v], -2)
        rot = torch.cat([self.rot, n_old + torch.arange(k.shape[-2])])
        shown = rerotate(keys, torch.arange(keys.shape[-2]) - rot, self.inv_freq)
        n = keys.shape[-2]
        keep = list(range(min(self.n_sink, n))) + list(range(max(self.n_sink, n - self.window + 1),
                                                             n))
        self.keys, self.values, self.rot = keys[..., keep, :], values[..., keep, :], rot[keep]
        return shown, values

    def get_seq_length(self):
        return self.keys.shape[-2] if self.is_initialized else 0

    def get_mask_sizes(self, q, *args):
        return self.get_seq_length() + q, 0

    def get_max_length(self):
        return self.n_sink + self.window


@pytest.mark.parametrize("arch", ARCHS)
def test_within_cache_equals_keys_and_query_at_their_slots(arch):
    """Re-rotated keys with absolute queries == StreamingLLM's literal slot positions."""
    model = tiny(arch)
    ids = torch.randint(0, 100, (1, 60), generator=torch.Generator().manual_seed(2))
    inv = model.base_model.rotary_emb.inv_freq.double()
    n = model.config.num_hidden_layers
    ref = _loop(model, ids, Cache(layers=[SlotSinkLayer(3, 10, inv) for _ in range(n)]))
    ours = _loop(model, ids, StreamingCache(model, Sinks(3, 10)))
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    absolute = _loop(model, ids, StreamingCache(model, Sinks(3, 10, positions="absolute")))
    assert (absolute - ref).abs().max() > 1e-3  # the two contracts differ once sinks are apart
    greedy = model.generate(ids[:, :5], max_new_tokens=40, do_sample=False,
                            past_key_values=StreamingCache(model, Sinks(3, 10)))
    cache, tok, toks = StreamingCache(model, Sinks(3, 10)), ids[:, :5], []
    with torch.no_grad():
        for _ in range(40):
            tok = model(input_ids=tok, past_key_values=cache).logits[:, -1:].argmax(-1)
            toks.append(tok)
    assert torch.equal(greedy[:, 5:], torch.cat(toks, 1))


@pytest.mark.parametrize("arch", ARCHS)
def test_sinks_bound_kv_over_10k_tokens_and_generate_runs(arch):
    model = tiny(arch)
    cache = StreamingCache(model, Sinks(4, 60))
    ids = torch.randint(0, 100, (1, 10_000), generator=torch.Generator().manual_seed(3))
    sizes = []
    with torch.no_grad():
        for i in range(0, 10_000, 100):
            model(input_ids=ids[:, i : i + 100], past_key_values=cache,
                  attention_mask=cache.attention_mask(100))
            sizes.append(cache.stored_tokens())
    assert cache.get_seq_length() == 10_000
    assert max(sizes) == 63  # 4 sinks + the last 59 (window 60 counts the next token)
    nbytes = cache.nbytes()
    out = model.generate(ids[:, :8], max_new_tokens=300, do_sample=False,
                         past_key_values=StreamingCache(model, Sinks(4, 60)))
    assert out.shape[1] == 308 > model.config.max_position_embeddings
    assert nbytes < 100_000


def test_rerotate_composes_with_the_models_rotation():
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

    model = tiny("gpt_neox")
    rot = model.base_model.rotary_emb
    x = torch.randn(1, 2, 5, 16)
    p = torch.tensor([[3, 9, 40, 100, 7]])
    d = torch.tensor([5, -9, 2, 400, 0])
    c1, s1 = rot(x, p)
    c2, s2 = rot(x, p + d)
    _, k1 = apply_rotary_pos_emb(x, x, c1, s1)
    _, k2 = apply_rotary_pos_emb(x, x, c2, s2)
    torch.testing.assert_close(rerotate(k1, d, rot.inv_freq.double()), k2, rtol=1e-5,
                               atol=1e-5)


def test_policy_mask_chunks_equal_token_by_token():
    """With the cache's 4D mask, chunks see exactly what one token at a time would."""
    model = tiny("llama")
    ids = torch.randint(0, 100, (1, 80), generator=torch.Generator().manual_seed(4))
    one = _loop(model, ids, StreamingCache(model, Window(12)))
    chunked = _loop(model, ids, StreamingCache(model, Window(12)), chunk=9, masks=True)
    torch.testing.assert_close(chunked, one, rtol=1e-5, atol=1e-5)


def test_segments_in_one_cache():
    model = tiny("qwen2")
    pol = Segments({"frames": Window(4), "text": Sinks(2, 20, positions="absolute")},
                   positions="absolute")
    cache = StreamingCache(model, pol)
    with torch.no_grad():
        for seg, n in [("text", 5), ("frames", 30), ("text", 3), ("frames", 10)]:
            cache.segment = seg
            model(input_ids=torch.randint(0, 100, (1, n)), past_key_values=cache,
                  attention_mask=cache.attention_mask(n) if cache.get_seq_length() else None)
    lay = cache.layers[0]
    segs = lay.entries["seg"][0].tolist()
    assert segs.count(1) == 8 and segs.count(0) == 4  # all text kept, the last 4 frames
    cache.segment = "audio"
    with pytest.raises(ValueError, match="unknown segment 'audio'"):
        model(input_ids=torch.randint(0, 100, (1, 2)), past_key_values=cache)


@pytest.mark.parametrize("policy, match", [
    (Merge(0.9), "log\\(count\\)"),
    (LinearAbsorb(8), "linear-attention output"),
    (SinkRefresh(2, 8), "different numbers of entries"),
    (Sinks(2, 8, positions="absolute"), None),
])
def test_unsupported_policies_say_why(policy, match):
    model = tiny("llama")
    if match is None:
        StreamingCache(model, policy)
        return
    with pytest.raises(ValueError, match=match):
        StreamingCache(model, policy)


@pytest.mark.parametrize("policy", [Window(64), Sinks(4, 64)])
def test_beam_search_follows_the_beams(policy):
    """Review finding: beam reordering was lost (rows must follow their beams)."""
    model = tiny("llama")
    ids = torch.randint(0, 100, (1, 6), generator=torch.Generator().manual_seed(5))
    kw = dict(max_new_tokens=15, do_sample=False, num_beams=2, num_return_sequences=2)
    ref = model.generate(ids, **kw)
    got = model.generate(ids, past_key_values=StreamingCache(model, policy), **kw)
    assert torch.equal(got, ref)


def test_full_cache_crop_follows_transformers():
    from streamwise.attention import Full

    model = tiny("qwen2")
    ids = torch.randint(0, 100, (1, 30), generator=torch.Generator().manual_seed(6))
    ours, ref = StreamingCache(model, Full()), DynamicCache(config=model.config)
    with torch.no_grad():
        for c in (ours, ref):
            model(input_ids=ids[:, :20], past_key_values=c)
            c.crop(-5)  # transformers 5.18: remove the 5 newest tokens
        a = model(input_ids=ids[:, 15:20], past_key_values=ours).logits
        b = model(input_ids=ids[:, 15:20], past_key_values=ref).logits
    assert ours.get_seq_length() == 20
    torch.testing.assert_close(a, b)


def test_policy_mask_works_on_the_first_call():
    """A prompt longer than the window, prefilled with the policy's mask == token by token."""
    model = tiny("mistral")
    ids = torch.randint(0, 100, (1, 20), generator=torch.Generator().manual_seed(7))
    one = _loop(model, ids, StreamingCache(model, Window(8)))
    cache = StreamingCache(model, Window(8))
    with torch.no_grad():
        chunked = model(input_ids=ids, past_key_values=cache,
                        attention_mask=cache.attention_mask(20)).logits
    torch.testing.assert_close(chunked, one, rtol=1e-5, atol=1e-5)
