"""``PolicyLayer``: one transformers attention layer's KV cache, run by a streamwise policy.

The entries (``attention/cache/entries.py``) are admitted, turned to within-cache slots where
asked (``hf/slots.py``) and evicted by the policy, one ``update`` per model call.  The position
contract and the masks are described in ``hf/cache.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers.cache_utils import CacheLayerMixin

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.base import CachePolicy, Full
from streamwise.attention.cache.segments import Segments
from streamwise.hf.rope import rerotate
from streamwise.hf.slots import slot_layout


class PolicyLayer(CacheLayerMixin):
    """One attention layer's cache, run by a streamwise policy."""

    is_sliding = False
    is_compileable = False
    is_croppable = False

    def __init__(self, policy: CachePolicy, inv_freq: Tensor | None, owner: Any
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
        if self.policy.positions == "group" and self.owner.positions_for != (self.seen, q):
            raise ValueError(f"group positions: pass position_ids=cache.position_ids({q}) with "
                             f"these {q} tokens (the model would rotate them at its own ids)")
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

    def nbytes(self) -> int:
        """Bytes of keys and values (and entry fields) this layer holds."""
        return E.nbytes(self.entries) if self.is_initialized else 0

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
