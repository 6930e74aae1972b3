"""Step many independent streams in one batched ``step``: stack their states, scatter back.

State is data, so sessions that a server holds one by one can share one call: their tensors are
concatenated along each leaf's batch axis, the model steps once, and the new state is split again.
Two streams may share a call when their states have the same structure and shapes (past warm-up,
at the same phase of the model's period).  Integer *clocks* (absolute frame counters named in
``CLOCK_KEYS``) differ between streams that started at different times; only their increments
matter once the buffers are full, so the batch runs on the first stream's clocks and every stream
gets its own clocks advanced by the same amount.  The test-suite checks batched == one-by-one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from streamwise.core.protocol import State, StreamingModule, ceil_frac
from streamwise.core.stream import Stream

#: integer state entries that count absolute frames (they advance with the stream's clock)
CLOCK_KEYS = frozenset({"t_in", "o_next", "acc_start"})

Path = tuple[Any, ...]


def leaves(state: State, path: Path = ()) -> list[tuple[Path, Any]]:
    """Every leaf of a state with its path (dict keys and list indices), in a fixed order."""
    if isinstance(state, dict):
        return [kv for k in state for kv in leaves(state[k], (*path, k))]
    if isinstance(state, (list, tuple)):
        return [kv for i, v in enumerate(state) for kv in leaves(v, (*path, i))]
    return [(path, state)]


def rebuild(state: State, new: dict[Path, Any], path: Path = ()) -> State:
    """``state``'s tree with each leaf replaced by ``new[path]``."""
    if isinstance(state, dict):
        return {k: rebuild(v, new, (*path, k)) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(rebuild(v, new, (*path, i)) for i, v in enumerate(state))
    return new[path]


def _is_clock(path: Path, value: Any) -> bool:
    return bool(path) and path[-1] in CLOCK_KEYS and isinstance(value, int)


class StateBatcher:
    """Groups streams of one model whose states can be stacked, and steps each group at once."""

    def __init__(self, model: StreamingModule) -> None:
        self.model = model
        period = model.period
        need = model.receptive_field + ceil_frac(model.delay) + period
        #: input frames a stream must have consumed before its clocks may differ from its peers'
        self.warm_frames = -(-need // period) * period
        self._axes: dict[tuple[tuple[int, ...], torch.dtype], dict[Path, int]] = {}
        self.last_groups: list[int] = []  # group sizes of the last ``step_all``

    # -- which leaves carry the batch -------------------------------------------------------------
    def batch_axes(self, frame_shape: tuple[int, ...], dtype: torch.dtype) -> dict[Path, int]:
        """Path -> batch axis of every tensor leaf, found by stepping batches of 2 and 3 rows."""
        key = (frame_shape, dtype)
        if key not in self._axes:
            found: list[dict[Path, Any]] = []
            for b in (2, 3):
                x = torch.zeros(b, *frame_shape, self.warm_frames + self.model.period, dtype=dtype)
                with torch.inference_mode():
                    _, st = self.model.step(x, self.model.init_state(b, dtype=dtype))
                found.append(dict(leaves(st)))
            axes: dict[Path, int] = {}
            for path, t2 in found[0].items():
                t3 = found[1].get(path)
                if isinstance(t2, Tensor) and isinstance(t3, Tensor) and t2.dim() == t3.dim():
                    diff = [i for i, (a, b) in enumerate(zip(t2.shape, t3.shape)) if a != b]
                    if len(diff) == 1:
                        axes[path] = diff[0]
            self._axes[key] = axes
        return self._axes[key]

    # -- grouping ---------------------------------------------------------------------------------
    def key(self, stream: Stream, chunk: Tensor) -> Hashable | None:
        """Streams with equal keys can be stepped together with these chunks (None: alone)."""
        if stream.batch_size != 1 or stream.closed:
            return None
        frame_shape = tuple(chunk.shape[1:-1])
        axes = self.batch_axes(frame_shape, chunk.dtype)
        warm = stream.frames_in >= self.warm_frames
        parts: list[Hashable] = [frame_shape, chunk.shape[-1], str(chunk.dtype), str(chunk.device),
                                 warm, stream.frames_in % self.model.period]
        for path, v in leaves(stream.state):
            if isinstance(v, Tensor):
                if path not in axes:
                    return None  # a tensor shared by all rows: never seen here, so not batched
                shape = tuple(s for i, s in enumerate(v.shape) if i != axes[path])
                parts.append((path, shape, str(v.dtype)))
            elif warm and _is_clock(path, v):
                parts.append((path, "clock"))
            else:
                parts.append((path, v))
        return tuple(parts)

    # -- stepping ---------------------------------------------------------------------------------
    def step(self, streams: Sequence[Stream], chunks: Sequence[Tensor]) -> list[Tensor]:
        """Step ``streams`` (equal keys, chunks already checked) in one call; return each output."""
        if len(streams) == 1:
            return [streams[0].push(chunks[0])]
        frame_shape = tuple(chunks[0].shape[1:-1])
        axes = self.batch_axes(frame_shape, chunks[0].dtype)
        olds = [dict(leaves(s.state)) for s in streams]
        stacked: dict[Path, Any] = {}
        for path, lead in olds[0].items():
            if isinstance(lead, Tensor):
                stacked[path] = torch.cat([o[path] for o in olds], dim=axes[path])
            else:
                stacked[path] = lead  # clocks run on the first stream's; the rest are equal
        state = rebuild(streams[0].state, stacked)
        with torch.inference_mode():
            y, new = self.model.step(torch.cat(list(chunks), 0), state)
        new_leaves = dict(leaves(new))
        outs = []
        for i, s in enumerate(streams):
            mine: dict[Path, Any] = {}
            for path, v in new_leaves.items():
                if isinstance(v, Tensor):
                    mine[path] = v.narrow(axes[path], i, 1).clone()
                elif _is_clock(path, v) and isinstance(olds[0].get(path), int):
                    mine[path] = olds[i][path] + (v - olds[0][path])
                else:
                    mine[path] = v
            outs.append(s.advance(chunks[i], rebuild(new, mine), y[i : i + 1]))
        return outs

    def step_all(self, streams: Sequence[Stream], chunks: Sequence[Tensor],
                 max_batch: int | None = None) -> list[Tensor]:
        """Check each chunk, group compatible streams (at most ``max_batch`` per call), step.

        Raises the first chunk's error before any stream changes: callers check chunks first
        when one bad chunk must not hold back the others.
        """
        for s, c in zip(streams, chunks):
            s.check(c)
        groups: dict[Hashable, list[int]] = {}
        alone: list[int] = []
        for i, (s, c) in enumerate(zip(streams, chunks)):
            k = self.key(s, c)
            if k is None:
                alone.append(i)
            else:
                groups.setdefault(k, []).append(i)
        plan = [[i] for i in alone]
        cap = max_batch or len(streams) or 1
        for idx in groups.values():
            plan += [idx[a : a + cap] for a in range(0, len(idx), cap)]
        outs: list[Tensor | None] = [None] * len(streams)
        self.last_groups = [len(idx) for idx in plan]
        for idx in plan:
            for i, y in zip(idx, self.step([streams[i] for i in idx], [chunks[i] for i in idx])):
                outs[i] = y
        return [y for y in outs if y is not None]
