"""``CachePolicy``: which cached entries each query sees, which survive, and at which positions.

A policy answers four questions, all from the entries' recorded absolute positions:

- ``visible``: the mask of entries query ``i`` attends to;
- ``evict``: the entries no future query can see (position-only policies drop exactly those, so
  streamed attention equals the offline one with the same mask, for any chunking);
- ``present``: the positions attention is shown: ``absolute`` (arrival frame), ``within_cache``
  (slot among the entries the query sees, StreamingLLM) or ``group`` (per-segment counters);
- ``block``: queries are answered in aligned blocks of this many frames (chunked attention).

Policies whose decisions depend on the content (merging, retrieval, refreshed sinks) set
``sequential`` and run token by token; their offline ``forward`` is plain causal attention, the
computation they approximate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from streamwise.attention.cache import entries as E
from streamwise.attention.cache.entries import Entries
from streamwise.core import state as spec_tools
from streamwise.core.state import Spec

POSITION_MODES = ("absolute", "within_cache", "group")
PState = dict[str, Any]


class CachePolicy:
    """Base policy: keep everything, causal mask (full attention over the whole past)."""

    block: int = 1
    sequential: bool = False
    grows: bool = False  # state beyond the cache entries grows without bound
    exact: bool = True
    segments: tuple[str, ...] = ("main",)
    #: outputs unchanged when every position moves by a multiple of ``block`` (streams at
    #: different clocks may then share a batched step, their positions shifted onto one clock)
    shift_invariant = False

    def __init__(self, positions: str = "absolute") -> None:
        if positions not in POSITION_MODES:
            raise ValueError(f"unknown positions {positions!r}: expected one of {POSITION_MODES}")
        if positions == "group" and len(self.segments) < 2:
            raise ValueError("positions='group' needs a Segments policy (one counter per segment)")
        self.positions = positions

    def check_encoding(self, encoding: str) -> None:
        """Raise when this policy cannot work with the attention's position ``encoding``
        ('rope' | 'alibi' | 'none'); called by the attention layer that takes the policy."""

    # -- state ---------------------------------------------------------------------------------
    def spec(self, heads: int, head_dim: int) -> Spec:
        """The declaration of the policy's own state next to the cache (``core/state.py``;
        an empty dict for most policies)."""
        return {}

    def init(
        self, batch: int, heads: int, head_dim: int, device: Any, dtype: torch.dtype
    ) -> PState:
        """The policy's own state, fresh, built from ``spec``."""
        return spec_tools.build(self.spec(heads, head_dim), batch, device, dtype)

    # -- per block -----------------------------------------------------------------------------
    def admit(self, cache: Entries, new: Entries, ps: PState) -> tuple[Entries, PState]:
        """Put the block's new entries in the cache (before attention)."""
        return E.concat(cache, new), ps

    def admit_rows(self, cache: Entries, new: Entries, ps: PState) -> Entries:
        """The row fields (``entries.ROW_FIELDS``) ``admit`` would leave, without keys or
        values: what a mask built before the keys exist lays out (``hf/cache.py``)."""
        return {f: torch.cat([cache[f], new[f]], 1) for f in E.ROW_FIELDS}

    def offline_entries(self, e: Entries, ps: PState) -> Entries:
        """The entries an offline ``forward`` attends over, from those of the whole sequence
        (the sequence itself; ``Compress`` adds its pooled groups)."""
        return e

    def attended(self, cache: Entries, q: Tensor, qi: Entries, ps: PState
                 ) -> tuple[Entries, PState]:
        """The entries the block attends over (the cache, plus retrieved pages for ``Retrieve``)."""
        return cache, ps

    def visible(self, e: Entries, qi: Entries, ps: PState) -> Tensor:
        """``[B, Tq, N]``: entry ``n`` is seen by query ``i``."""
        causal = e["pos"][:, None, :] <= qi["pos"][:, :, None]
        return causal & e["valid"][:, None, :] & self.allows(e, qi, ps)

    def allows(self, e: Entries, qi: Entries, ps: PState) -> Tensor | bool:
        """The policy's own restriction on top of causality."""
        return self.rule(e["pos"][:, None, :], qi["pos"][:, :, None])

    def rule(self, key: Tensor, query: Tensor) -> Tensor | bool:
        """Position rule: may a query at position ``query`` see a key at ``key`` (<= query)?"""
        return True

    def extra_output(self, q: Tensor, e: Entries, qi: Entries, ps: PState) -> Tensor | None:
        """An output added to attention's, ``[B, H, Tq, D]`` (``LinearAbsorb``), or None."""
        return None

    def evict(self, cache: Entries, ps: PState, t: int) -> tuple[Entries, PState]:
        """Drop what frames ``t, t+1, ...`` will never see (``t`` = frames consumed so far)."""
        warm = self.warm_keep()
        if warm is not None and torch.compiler.is_exporting():
            return E.keep_ends(cache, *warm), ps
        keep = self.keep(cache, ps, t)
        if keep is True:
            return cache, ps
        return E.select(cache, keep | cache["pin"]), ps

    def warm_keep(self) -> tuple[int, int] | None:
        """``(first, last)``: once warm, eviction keeps the first ``first`` and the last ``last``
        entries, whatever the clock (position policies; None where it depends on more).  An
        export traces that static form, since its graphs cannot read the clock
        (``export/program.py``); its check against the offline forward holds it to exactness."""
        return None

    def keep(self, cache: Entries, ps: PState, t: int) -> Tensor | bool:
        """Entries the next query (at ``t``, and so every later one) may still see."""
        return self.rule(cache["pos"], torch.tensor(t))

    # -- arrivals ------------------------------------------------------------------------------
    def segment_ids(self, segment: str | list[str] | None, n: int, device: Any,
                    how: str = "pass segment=<name>") -> Tensor:
        """Segment index of each of ``n`` new frames (a name for all, or one name per frame)."""
        names = self.segments
        if segment is None:
            if len(names) > 1:
                raise ValueError(f"this cache has segments {list(names)}: {how}")
            return torch.zeros(n, dtype=torch.long, device=device)
        seq = [segment] * n if isinstance(segment, str) else list(segment)
        if len(seq) != n:
            raise ValueError(f"segment list has {len(seq)} names for {n} frames")
        unknown = sorted({s for s in seq if s not in names})
        if unknown:
            raise ValueError(f"unknown segment {unknown[0]!r}: expected one of {list(names)}")
        return torch.tensor([names.index(s) for s in seq], dtype=torch.long, device=device)

    def arrivals(self, t: int | Tensor, seg: Tensor, ps: PState, batch: int, dtype: torch.dtype
                 ) -> Entries:
        """Row fields of ``seg.numel()`` frames arriving at ``t, t+1, ...`` (position contract:
        arrival frame, segment, index within it, per-segment counts up to each frame).

        The frames seen so far per segment are ``ps["counts"]`` where the policy keeps them
        (``Segments``); with one segment they are ``t``."""
        n, dev = seg.numel(), seg.device
        if isinstance(t, Tensor):  # each row's frame ``[B]`` (an export's clock): one segment
            pos = t[:, None] + torch.arange(n, device=dev)
            return {"pos": pos, "seg": seg[None].expand(batch, n), "lidx": pos,
                    "bias": torch.zeros(batch, n, device=dev, dtype=dtype),
                    "pin": torch.zeros(batch, n, dtype=torch.bool, device=dev),
                    "valid": torch.ones(batch, n, dtype=torch.bool, device=dev),
                    "counts": (pos + 1)[..., None]}
        counts = ps["counts"] if "counts" in ps else torch.tensor([t], device=dev)
        incl = counts[None, :] + torch.nn.functional.one_hot(seg, len(self.segments)).cumsum(0)
        lidx = incl.gather(1, seg[:, None]).squeeze(1) - 1
        row = lambda x: x[None].expand(batch, *x.shape)  # noqa: E731
        fields = {
            "pos": row(t + torch.arange(n, device=dev)), "seg": row(seg), "lidx": row(lidx),
            "bias": torch.zeros(batch, n, device=dev, dtype=dtype),
            "pin": torch.zeros(batch, n, dtype=torch.bool, device=dev),
            "valid": torch.ones(batch, n, dtype=torch.bool, device=dev),
            "counts": row(incl),  # per segment, up to each frame (inclusive)
        }
        return fields

    # -- positions -----------------------------------------------------------------------------
    def present(self, e: Entries) -> Tensor:
        """Positions shown to attention for ``absolute`` / ``group`` modes, ``[B, N]``."""
        return e["pos"]

    # -- metadata ------------------------------------------------------------------------------
    @property
    def bound(self) -> int | None:
        """Most entries kept between blocks (None: unbounded)."""
        return None

    @property
    def receptive_field(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(positions={self.positions!r})"


class SinkWindow:
    """The rule "the first ``n_sink`` frames plus the last ``window``", shared by the policies
    built on it (``Window`` is ``n_sink = 0``); call ``_sink_window`` from ``__init__``."""

    n_sink: int = 0
    window: int = 1

    def _sink_window(self, n_sink: int, window: int, min_sink: int = 0) -> None:
        self.n_sink = check_int("n_sink", n_sink, min_sink)
        self.window = check_int("window", window, 1)
        if n_sink > window:
            raise ValueError(f"n_sink ({n_sink}) must not exceed window ({window})")

    def rule(self, key: Tensor, query: Tensor) -> Tensor:
        return (key < self.n_sink) | (key > query - self.window)

    @property
    def bound(self) -> int:
        return self.n_sink + self.window - 1

    @property
    def receptive_field(self) -> int:
        return self.window


class Full(CachePolicy):
    """Keep every entry: plain causal attention over the whole stream (memory grows)."""


def check_int(name: str, value: int, low: int) -> int:
    """``value`` as an int >= ``low``, or a ValueError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value
