"""``Prefix``: a context that is rewritten, not appended, recomputes only after the common prefix.

Stream2LLM's update mode: when the input is revised (a partial transcript corrected, a document
edited), the KV of the longest common prefix of old and new input is still valid, because causal
attention never lets a token see what comes after it.  ``Prefix`` remembers what the cache holds,
finds that prefix, crops the cache there and feeds only the rest.  Works for ``StreamingAttention``
(frames, compared exactly) and for Hugging Face caches (token ids, see ``streamwise.hf``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor


def common_prefix(a: Tensor, b: Tensor, time_axis: int = 1) -> int:
    """Length of the longest common prefix of ``a`` and ``b`` along ``time_axis`` (all rows)."""
    n = min(a.shape[time_axis], b.shape[time_axis])
    if not n:
        return 0
    same = (a.narrow(time_axis, 0, n) == b.narrow(time_axis, 0, n)).movedim(time_axis, 0)
    per_t = same.reshape(n, -1).all(1)
    diff = (~per_t).nonzero()
    return int(diff[0]) if diff.numel() else n


class Prefix:
    """Tracks the input a cache was built from; ``update`` reuses its longest common prefix.

    ``crop(state, n) -> state`` and ``feed(x, state) -> (out, state)`` adapt it to a model.
    """

    def __init__(self, crop: Callable[[Any, int], Any], feed: Callable[[Tensor, Any], Any],
                 time_axis: int = 1) -> None:
        self.crop, self.feed, self.time_axis = crop, feed, time_axis
        self.held: Tensor | None = None
        self.reused = 0  # frames reused by the last update
        self.computed = 0  # frames computed by the last update

    def update(self, x: Tensor, state: Any) -> tuple[Any, Any]:
        """The new full context ``x``: outputs for the frames after the common prefix, and the
        state as if ``x`` had been fed from the start."""
        n = 0 if self.held is None else common_prefix(self.held, x, self.time_axis)
        held = 0 if self.held is None else self.held.shape[self.time_axis]
        if n < held:
            state = self.crop(state, n)
        rest = x.narrow(self.time_axis, n, x.shape[self.time_axis] - n)
        out, state = self.feed(rest, state)
        self.held, self.reused, self.computed = x.clone(), n, rest.shape[self.time_axis]
        return out, state


def for_attention(module: Any) -> Prefix:
    """A ``Prefix`` driving a ``StreamingAttention`` with a ``Full`` cache."""
    return Prefix(module.crop, module.step, module.time_axis)


