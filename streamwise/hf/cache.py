"""streamwise cache policies as ``transformers.Cache`` (5.x): bounded KV for ``generate`` and loops.

``StreamingCache(model, Sinks(4, 1020))`` is a ``transformers.Cache`` whose layers keep the entries
a ``streamwise.attention`` policy keeps.  The position contract:

- every entry records the absolute position at which it arrived (``seen + i``: the model's default
  ``position_ids``, which ``generate`` and a plain loop use);
- ``positions='absolute'``: keys stay as the model rotated them;
- ``positions='group'`` (``Segments`` only; Group Position Encoding): each segment counts its
  own tokens from its offset; the loop passes ``position_ids=cache.position_ids(q)`` so that the
  model rotates queries and keys at those positions (a call without them is refused);
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
from transformers.cache_utils import Cache

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import CachePolicy, Full
from streamwise.attention.cache.segments import Segments
from streamwise.attention.cache.sinks import Sinks
from streamwise.attention.cache.window import Window
from streamwise.hf.policy_layer import PolicyLayer
from streamwise.hf.ring import RingLayer
from streamwise.hf.rope import model_inv_freq
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


class StreamingCache(Cache):
    """A ``transformers.Cache`` whose every layer follows ``policy`` (bounded KV for LLMs);
    ``ring=False`` runs `Sinks` and `Window` through the generic entries path (for A/B)."""

    def __init__(self, model: Any, policy: CachePolicy, ring: bool = True) -> None:
        check_policy(policy)
        self.policy = policy
        inv_freq = model_inv_freq(model) if policy.positions == "within_cache" else None
        n = model.config.get_text_config().num_hidden_layers
        self.segment: str | list[str] | None = None  # the segment of the next tokens (Segments)
        self.mask_for: tuple[int, int] | None = None  # (seen, q) of the last attention_mask()
        self.positions_for: tuple[int, int] | None = None  # (seen, q) of the last position_ids()
        # Sinks / Window decode through a preallocated ring (hf/ring.py) unless ring=False
        kind = RingLayer if ring and RingLayer.suits(policy) else PolicyLayer
        super().__init__(layers=[kind(policy, inv_freq, self) for _ in range(n)])

    def attention_mask(self, query_length: int, dtype: torch.dtype = torch.float32,
                       batch_size: int = 1) -> Tensor:
        """``[B, 1, q, kept + q]`` additive mask: exactly the policy's visibility for a chunk of
        ``query_length`` new tokens (pass it as ``attention_mask`` in a manual loop, the first
        call included; ``batch_size`` is used until the cache has seen a call)."""
        layer, pos, ps, new = self._next(query_length, batch_size)
        kept = self.policy.admit_rows(pos, new, ps)  # with Compress's pooled rows
        if self.policy.positions == "within_cache" and layer.inv_freq is not None:
            seen = slot_layout(self.policy, kept, new, ps)[2]  # with the copies of moved keys
        else:
            seen = self.policy.visible(kept, new, ps)
        self.mask_for = (layer.seen, query_length)  # the chunk this mask was laid out for
        bias = kept["bias"].to(dtype)  # log(count) of pooled entries, 0 elsewhere
        if seen.shape[-1] != bias.shape[-1]:  # within-cache copies of moved keys: no pooling
            bias = torch.zeros(seen.shape[-1], dtype=dtype, device=seen.device)[None]
        out = bias[:, None, :].expand(seen.shape).to(seen.device)
        return out.masked_fill(~seen, torch.finfo(dtype).min)[:, None]

    def _next(self, query_length: int, batch_size: int
              ) -> tuple[PolicyLayer, dict[str, Tensor], dict[str, Any], dict[str, Tensor]]:
        """Layer 0, its kept entries, its policy state and the row fields of the next
        ``query_length`` tokens of ``cache.segment`` (a fresh state before the first call)."""
        layer = self.layers[0]
        assert isinstance(layer, PolicyLayer)
        if layer.is_initialized:
            pos, ps = layer.entries, layer.ps
        else:  # no call yet: no entries, the policy's fresh state
            pos = E.empty(batch_size, 1, 1, "cpu", torch.float32)
            ps = self.policy.init(batch_size, 1, 1, "cpu", torch.float32)
        b, dev = pos["pos"].shape[0], pos["pos"].device
        seg = self.policy.segment_ids(self.segment, query_length, dev, how="set cache.segment")
        return layer, pos, ps, self.policy.arrivals(layer.seen, seg, ps, b, torch.float32)

    def position_ids(self, query_length: int, batch_size: int = 1) -> Tensor:
        """``[B, q]`` positions of the next ``query_length`` tokens of ``cache.segment`` under
        ``positions='group'``: each segment counts its own tokens from its offset (Group Position
        Encoding).  Pass them as ``position_ids``, so the model rotates queries and keys at them;
        a group-position call without them is refused."""
        if self.policy.positions != "group":
            raise ValueError(f"position_ids are for positions='group'; this cache presents "
                             f"{self.policy.positions!r} positions (the model's default ids)")
        layer, _, _, new = self._next(query_length, batch_size)
        self.positions_for = (layer.seen, query_length)
        return self.policy.present(new)

    def stored_tokens(self) -> int:
        """Entries held by the first layer (every layer holds the same count)."""
        layer = self.layers[0]
        return layer.kept() if isinstance(layer, PolicyLayer) else 0

    def nbytes(self) -> int:
        """Bytes of keys and values held by all layers."""
        return sum(lay.nbytes() for lay in self.layers if isinstance(lay, PolicyLayer))
