"""streamwise cache policies as ``transformers.Cache`` (5.x): bounded KV for ``generate`` and loops.

``StreamingCache(model, Sinks(4, 1020))`` is a ``transformers.Cache`` whose layers keep the entries
a ``streamwise.attention`` policy keeps.  The position contract:

- every entry records the absolute position at which it arrived (``seen + i``: the model's default
  ``position_ids``, which ``generate`` and a plain loop use);
- ``positions='absolute'``: keys stay as the model rotated them;
- ``positions='within_cache'`` (StreamingLLM): keys are shown at their slot among the keys each
  query sees.  Queries keep their absolute position (the model rotates them; a cache cannot), so
  a key in slot ``r`` of a query's ``n`` is re-rotated to ``q_pos - (n - 1 - r)``: every
  query-key distance equals the slot distance, which is what rotating both by slot gives (RoPE
  only sees distances).  Where the queries of one chunk need a key at different slots (sinks,
  once the window has left them), the key is returned once per slot and
  ``cache.attention_mask(q)`` shows each query its own copy (``hf/slots.py``); without that mask
  such a chunk is refused.

No monkeypatching: the model's own causal mask over the returned keys sees every kept key (decode,
or a chunk that fits the policy); for chunks where the policy hides keys from some queries, pass
``cache.attention_mask(q_len)`` (a 4D mask, which the models take as is).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers.cache_utils import Cache, CacheLayerMixin

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import CachePolicy, Full
from streamwise.attention.cache.segments import Segments
from streamwise.attention.cache.sinks import Sinks
from streamwise.attention.cache.window import Window
from streamwise.hf.rope import model_inv_freq, rerotate
from streamwise.hf.slots import slot_layout

SUPPORTED = (Full, Window, Sinks, Segments)


def check_policy(policy: CachePolicy) -> None:
    """Refuse policies a Hugging Face attention layer cannot carry out, saying why."""
    if not isinstance(policy, CachePolicy):
        raise ValueError(f"expected a streamwise CachePolicy, got {type(policy).__name__}")
    if not isinstance(policy, SUPPORTED):
        why = {
            "Merge": "merged entries need log(count) added to their logit",
            "LinearAbsorb": "the linear-attention output must be added to the layer's output",
            "Retrieve": "page retrieval needs the query",
            "Chunked": "decoder language models are causal",
            "SinkRefresh": "its refreshes follow each layer's keys, so layers would keep different "
                           "numbers of entries while the model builds one mask for all layers",
        }.get(type(policy).__name__, "it is not supported here")
        raise ValueError(f"{type(policy).__name__} cannot run inside a transformers attention "
                         f"layer ({why}); use streamwise.StreamingAttention for it")
    if policy.positions == "group":
        raise ValueError("positions='group' is not supported in transformers caches: the model "
                         "rotates queries by its own position ids")


class PolicyLayer(CacheLayerMixin):
    """One attention layer's cache, run by a streamwise policy."""

    is_sliding = False
    is_compileable = False
    is_croppable = False

    def __init__(self, policy: CachePolicy, inv_freq: Tensor | None, owner: StreamingCache
                 ) -> None:
        super().__init__()
        self.policy, self.inv_freq, self.owner = policy, inv_freq, owner
        self.seen = 0
        self.entries: dict[str, Tensor] = {}
        self.ps: dict[str, Any] = {}

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor, *args: Any) -> None:
        b, h, _, d = key_states.shape
        self.dtype, self.device = key_states.dtype, key_states.device
        self.entries = E.empty(b, h, d, self.device, self.dtype)
        self.ps = self.policy.init(b, h, d, self.device, self.dtype)
        self.keys, self.values = self.entries["k"], self.entries["v"]
        self.is_initialized = True

    def new_entries(self, k: Tensor, v: Tensor) -> dict[str, Tensor]:
        """Entries of ``q`` new tokens (arriving at ``seen, seen+1, ...``)."""
        seg = self.policy.segment_ids(self.owner.segment, k.shape[-2], k.device,
                                      how="set cache.segment")
        rows = self.policy.arrivals(self.seen, seg, self.ps, k.shape[0], k.dtype)
        return {**rows, "k": k, "v": v}

    def update(self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any
               ) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        q = key_states.shape[-2]
        new = self.new_entries(key_states, value_states)
        cache, ps = self.policy.admit(self.entries, new, self.ps)
        if not bool(cache["valid"].all()):
            raise ValueError("rows of this batch kept different entries (a content-based policy); "
                             "run one stream per cache with transformers")
        keys, values = cache["k"], cache["v"]
        if self.policy.positions == "within_cache" and self.inv_freq is not None:
            keys, values = self._at_slots(cache, new, ps, q)
        self.entries, self.ps = self.policy.evict(cache, ps, self.seen + q)
        self.keys, self.values = self.entries["k"], self.entries["v"]
        self.seen += q
        return keys, values

    def _at_slots(self, cache: dict[str, Tensor], new: dict[str, Tensor], ps: dict[str, Any],
                  q: int) -> tuple[Tensor, Tensor]:
        """Keys turned to each query's within-cache slots (``hf/slots.py``); copies of a key
        where the chunk's queries need it at different slots (then the cache's mask is needed)."""
        keys, values = cache["k"], cache["v"]
        n, inv_freq = keys.shape[-2], self.inv_freq
        assert inv_freq is not None  # within-cache positions are only set up for RoPE models
        if q == 1 and not isinstance(self.policy, Segments):  # decode: the one query sees all
            shift = self.seen + 1 - n + torch.arange(n, device=keys.device) - cache["pos"][0]
        else:
            idx, shift, _ = slot_layout(self.policy, cache, new, ps)
            if idx.numel() > n:
                if self.owner.mask_for != (self.seen, q):
                    raise ValueError(
                        f"a chunk of {q} tokens under within-cache positions shows the sinks at "
                        "a different slot to each query: pass attention_mask=cache."
                        f"attention_mask({q}) (the keys then carry one copy per slot), or feed "
                        "one token at a time")
                keys, values = keys.index_select(2, idx), values.index_select(2, idx)
        moved = (shift != 0).nonzero().flatten()
        if moved.numel():  # only the sinks (and other gaps) turn
            turned = rerotate(keys.index_select(2, moved), shift[moved], inv_freq)
            keys = keys.index_copy(2, moved, turned)
        return keys, values

    def get_seq_length(self) -> int:
        return self.seen

    def get_mask_sizes(self, query_length: int, *args: Any) -> tuple[int, int]:
        kept = self.kept()
        return kept + query_length, self.seen - kept

    def get_max_length(self) -> int:
        b = self.policy.bound
        return -1 if b is None else b + 1

    def kept(self) -> int:
        return E.size(self.entries) if self.is_initialized else 0

    def reset(self) -> None:
        self.is_initialized, self.seen = False, 0
        self.entries, self.ps, self.keys, self.values = {}, {}, None, None

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._rows(lambda t: t.repeat_interleave(repeats, 0))

    def batch_select_indices(self, indices: Tensor) -> None:
        self._rows(lambda t: t[indices])

    def _rows(self, fn: Any) -> None:
        if not self.is_initialized:
            return
        self.entries = {f: fn(t) for f, t in self.entries.items()}
        self.ps = {f: (fn(t) if isinstance(t, Tensor) and t.dim() and f != "counts" else t)
                   for f, t in self.ps.items()}
        self.keys, self.values = self.entries["k"], self.entries["v"]

    def crop(self, tokens_to_remove: int) -> None:
        """transformers 5.18's convention: a negative count removes that many of the newest
        tokens; a positive one is the legacy "final length"."""
        if not isinstance(self.policy, Full):
            raise ValueError(f"crop needs every past entry; {self.policy!r} evicted some")
        keep = tokens_to_remove if tokens_to_remove > 0 else self.seen + tokens_to_remove
        if not self.is_initialized or keep >= self.seen:
            return
        keep = max(0, keep)
        self.entries = E.select(self.entries, self.entries["pos"] < keep)
        self.keys, self.values = self.entries["k"], self.entries["v"]
        self.seen = keep

    def reorder_cache(self, beam_idx: Tensor) -> None:
        """Beam search: rows follow their beams (entries and the policy's own state)."""
        self._rows(lambda t: t.index_select(0, beam_idx.to(t.device)))


class StreamingCache(Cache):
    """A ``transformers.Cache`` whose every layer follows ``policy`` (bounded KV for LLMs)."""

    def __init__(self, model: Any, policy: CachePolicy) -> None:
        check_policy(policy)
        self.policy = policy
        inv_freq = model_inv_freq(model) if policy.positions == "within_cache" else None
        n = model.config.get_text_config().num_hidden_layers
        self.segment: str | list[str] | None = None  # the segment of the next tokens (Segments)
        self.mask_for: tuple[int, int] | None = None  # (seen, q) of the last attention_mask()
        super().__init__(layers=[PolicyLayer(policy, inv_freq, self) for _ in range(n)])

    def attention_mask(self, query_length: int, dtype: torch.dtype = torch.float32,
                       batch_size: int = 1) -> Tensor:
        """``[B, 1, q, kept + q]`` additive mask: exactly the policy's visibility for a chunk of
        ``query_length`` new tokens (pass it as ``attention_mask`` in a manual loop, the first
        call included; ``batch_size`` is used until the cache has seen a call)."""
        layer = self.layers[0]
        assert isinstance(layer, PolicyLayer)
        if layer.is_initialized:
            pos, ps = layer.entries, layer.ps
        else:  # no call yet: no entries, the policy's fresh state
            pos = E.empty(batch_size, 1, 1, "cpu", torch.float32)
            ps = self.policy.init(batch_size, 1, 1, "cpu", torch.float32)
        b, dev = pos["pos"].shape[0], pos["pos"].device
        seg = self.policy.segment_ids(self.segment, query_length, dev, how="set cache.segment")
        new = self.policy.arrivals(layer.seen, seg, ps, b, torch.float32)
        kept = {f: torch.cat([pos[f], new[f]], 1) for f in E.ROW_FIELDS}
        if self.policy.positions == "within_cache" and layer.inv_freq is not None:
            seen = slot_layout(self.policy, kept, new, ps)[2]  # with the copies of moved keys
        else:
            seen = self.policy.visible(kept, new, ps)
        self.mask_for = (layer.seen, query_length)  # the chunk this mask was laid out for
        out = torch.zeros(seen.shape, dtype=dtype, device=seen.device)
        return out.masked_fill(~seen, torch.finfo(dtype).min)[:, None]

    def stored_tokens(self) -> int:
        """Entries held by the first layer (every layer holds the same count)."""
        layer = self.layers[0]
        return layer.kept() if isinstance(layer, PolicyLayer) else 0

    def nbytes(self) -> int:
        """Bytes of keys and values held by all layers."""
        return sum(E.nbytes(lay.entries) for lay in self.layers
                   if isinstance(lay, PolicyLayer) and lay.is_initialized)
