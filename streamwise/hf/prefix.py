"""``PrefixSession``: a language model over a context that gets rewritten (Stream2LLM update mode).

Each ``update(ids)`` gives the whole new context; the KV of the longest common prefix with the last
context is kept (``DynamicCache.crop``) and only the rest runs through the model.  Causal attention
makes this exact: the kept tokens never saw what changed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers import DynamicCache

from streamwise.attention.cache.prefix import Prefix


class PrefixSession:
    """Logits for the recomputed tail of each updated context; ``reused``/``computed`` counts."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache = DynamicCache(config=model.config)
        self.prefix = Prefix(self._crop, self._feed, time_axis=1)

    def _crop(self, cache: DynamicCache, n: int) -> DynamicCache:
        cache.crop(n - cache.get_seq_length())  # 5.18: a negative count removes that many
        return cache

    def _feed(self, ids: Tensor, cache: DynamicCache) -> tuple[Tensor, DynamicCache]:
        if not ids.shape[1]:
            vocab = self.model.config.get_text_config().vocab_size
            p = next(self.model.parameters())
            return torch.zeros(ids.shape[0], 0, vocab, dtype=p.dtype, device=p.device), cache
        with torch.no_grad():
            out: Any = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        return out.logits, cache

    def update(self, ids: Tensor) -> Tensor:
        """Logits ``[B, computed, vocab]`` of the tokens after the common prefix."""
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(
                f"expected token ids [B, T] (int64), got {tuple(ids.shape)} {ids.dtype}")
        if ids.shape[1] == 0:
            raise ValueError("expected at least one token")
        logits, self.cache = self.prefix.update(ids, self.cache)
        return logits

    @property
    def reused(self) -> int:
        return self.prefix.reused

    @property
    def computed(self) -> int:
        return self.prefix.computed
