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

import weakref
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


class _Held:
    """Placeholder for ``Stream.state`` while the stream's state is a row of a resident batch."""

    def __repr__(self) -> str:
        return "<state held in a batch: StateBatcher.materialize(stream) first>"


_HELD = _Held()


class _Resident:
    """The stacked state of streams that last stepped together (immutable once made)."""

    def __init__(self, state: State, items: dict[Path, Any], axes: dict[Path, int],
                 clocks: dict[Path, list[int]]) -> None:
        self.state, self.leaves, self.axes, self.clocks = state, items, axes, clocks
        self._structure: dict[bool, tuple[Hashable, ...] | None] = {}

    def structure(self, batcher: StateBatcher, axes: dict[Path, int], warm: bool
                  ) -> tuple[Hashable, ...] | None:
        if warm not in self._structure:  # rows share shapes; cold rows also share clocks
            self._structure[warm] = batcher._structure(list(self.leaves.items()), axes, warm)
        return self._structure[warm]


class StateBatcher:
    """Groups streams of one model whose states can be stacked, and steps each group at once."""

    def __init__(self, model: StreamingModule) -> None:
        self.model = model
        self.period = period = model.period  # cached: containers compute it with Fractions
        need = model.receptive_field + ceil_frac(model.delay) + period
        #: input frames a stream must have consumed before its clocks may differ from its peers'
        self.warm_frames = -(-need // period) * period
        self._axes: dict[tuple[tuple[int, ...], torch.dtype, str], dict[Path, int]] = {}
        self.last_groups: list[int] = []  # group sizes of the last ``step_all``
        mods = list(model.modules())
        #: clocks may differ within a batch (False: some layer reads the absolute clock)
        self.rebase = all(getattr(m, "rebase_clocks", True) for m in mods)
        #: whether streams of this model can share a step at all
        self.stackable = all(getattr(m, "stackable", True) for m in mods)
        self._rows: weakref.WeakKeyDictionary[Stream, tuple[_Resident, int]] = (
            weakref.WeakKeyDictionary()
        )

    # -- which leaves carry the batch -------------------------------------------------------------
    def batch_axes(self, frame_shape: tuple[int, ...], dtype: torch.dtype,
                   device: torch.device | str = "cpu") -> dict[Path, int]:
        """Path -> batch axis of every tensor leaf, found by stepping batches of 2 and 3 rows."""
        key = (frame_shape, dtype, str(device))
        if key not in self._axes:
            found: list[dict[Path, Any]] = []
            for b in (2, 3):
                x = torch.zeros(b, *frame_shape, self.warm_frames + self.period, dtype=dtype,
                                device=device)
                with torch.inference_mode():
                    _, st = self.model.step(x, self.model.init_state(b, dtype=dtype,
                                                                     device=device))
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
    def _structure(self, items: Sequence[tuple[Path, Any]], axes: dict[Path, int],
                   warm: bool) -> tuple[Hashable, ...] | None:
        """What must match for two states to stack: shapes off the batch axis, non-clock values."""
        parts: list[Hashable] = []
        for path, v in items:
            if isinstance(v, Tensor):
                if path not in axes:
                    return None  # a tensor shared by all rows: never seen here, so not batched
                shape = tuple(s for i, s in enumerate(v.shape) if i != axes[path])
                parts.append((path, shape, str(v.dtype)))
            elif path and path[-1] == "start_max" and isinstance(v, int) and v > 0:
                return None  # a row was reset (Stream.reset): its start is on an absolute clock
            elif warm and _is_clock(path, v):
                parts.append((path, "clock"))
            else:
                parts.append((path, v))
        return tuple(parts)

    def key(self, stream: Stream, chunk: Tensor) -> Hashable | None:
        """Streams with equal keys can be stepped together with these chunks (None: alone)."""
        if stream.batch_size != 1 or stream.closed or not self.stackable:
            return None
        frame_shape = tuple(chunk.shape[1:-1])
        axes = self.batch_axes(frame_shape, chunk.dtype, chunk.device)
        warm = self.rebase and stream.frames_in >= self.warm_frames
        ref = self._rows.get(stream)
        if ref is not None:
            structure = ref[0].structure(self, axes, warm)
        else:
            structure = self._structure(leaves(stream.state), axes, warm)
        if structure is None:
            return None
        return (frame_shape, chunk.shape[-1], str(chunk.dtype), str(chunk.device), warm,
                stream.frames_in % self.period, structure)

    # -- resident rows ----------------------------------------------------------------------------
    def materialize(self, stream: Stream) -> None:
        """Give ``stream`` its own state again (before a snapshot, a lone push or ``close``)."""
        ref = self._rows.pop(stream, None)
        if ref is not None:
            stream.state = self._row(*ref, copy=True)

    def row_state(self, stream: Stream) -> State:
        """``stream``'s state to read (a snapshot, say) without taking it out of its batch: views
        into the resident batch, valid until the stream steps again."""
        ref = self._rows.get(stream)
        return stream.state if ref is None else self._row(*ref, copy=False)

    @staticmethod
    def _row(res: _Resident, row: int, copy: bool) -> State:
        mine: dict[Path, Any] = {}
        for path, v in res.leaves.items():
            if isinstance(v, Tensor):
                t = v.narrow(res.axes[path], row, 1)
                mine[path] = t.clone() if copy else t
            elif path in res.clocks:
                mine[path] = res.clocks[path][row]
            else:
                mine[path] = v
        return rebuild(res.state, mine)

    def is_resident(self, stream: Stream) -> bool:
        return stream in self._rows

    # -- stepping ---------------------------------------------------------------------------------
    def step(self, streams: Sequence[Stream], chunks: Sequence[Tensor]) -> list[Tensor]:
        """Step ``streams`` (equal keys, chunks already checked) in one call; return each output.

        States are gathered per leaf (one ``cat``/``index_select`` per leaf and source batch, not
        per stream), and the new state stays stacked: each stream keeps a row reference until it
        next steps or is ``materialize``d.
        """
        if len(streams) == 1:
            self.materialize(streams[0])
            return [streams[0].push(chunks[0])]
        frame_shape = tuple(chunks[0].shape[1:-1])
        axes = self.batch_axes(frame_shape, chunks[0].dtype, chunks[0].device)
        # order: rows of each resident batch together, then streams holding their own state
        sources: dict[int, tuple[_Resident, list[int], list[int]]] = {}
        own: list[int] = []
        for i, st in enumerate(streams):
            ref = self._rows.get(st)
            if ref is None:
                own.append(i)
            else:
                src = sources.setdefault(id(ref[0]), (ref[0], [], []))
                src[1].append(ref[1])
                src[2].append(i)
        order = [i for _, _, idx in sources.values() for i in idx] + own
        own_leaves = {i: dict(leaves(streams[i].state)) for i in own}
        template = next(iter(sources.values()))[0] if sources else None
        lead_items = template.leaves if template else own_leaves[own[0]]
        lead_state = template.state if template else streams[own[0]].state
        stacked: dict[Path, Any] = {}
        old_clocks: dict[Path, list[int]] = {}
        for path, lead in lead_items.items():
            if isinstance(lead, Tensor):
                ax = axes[path]
                parts = []
                for res, rows, _ in sources.values():
                    t = res.leaves[path]
                    if rows == list(range(t.shape[ax])):
                        parts.append(t)
                    else:
                        parts.append(t.index_select(ax, torch.tensor(rows, device=t.device)))
                parts += [own_leaves[i][path] for i in own]
                stacked[path] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=ax)
            elif _is_clock(path, lead):
                clocks = [res.clocks[path][r] for res, rows, _ in sources.values() for r in rows]
                clocks += [own_leaves[i][path] for i in own]
                old_clocks[path] = clocks
                stacked[path] = clocks[0]  # the batch runs on its first stream's clocks
            else:
                stacked[path] = lead  # equal for every stream (part of the key)
        x = torch.cat([chunks[i] for i in order], 0)
        with torch.inference_mode():
            y, new = self.model.step(x, rebuild(lead_state, stacked))
        new_leaves = dict(leaves(new))
        moved = {p: [c + (new_leaves[p] - olds[0]) for c in olds]
                 for p, olds in old_clocks.items() if isinstance(new_leaves.get(p), int)}
        res = _Resident(new, new_leaves, axes, moved)
        outs: list[Tensor] = [torch.empty(0)] * len(streams)
        for row, i in enumerate(order):
            self._rows[streams[i]] = (res, row)
            outs[i] = streams[i].advance(chunks[i], _HELD, y[row : row + 1])
        return outs

    def plan(self, streams: Sequence[Stream], chunks: Sequence[Tensor],
             max_batch: int | None = None) -> list[list[int]]:
        """Indices of ``streams`` grouped for ``step``: equal keys, at most ``max_batch`` each
        (1: every stream alone, no key computed), in order of each group's first stream."""
        if max_batch == 1:
            return [[i] for i in range(len(streams))]
        cap = max_batch or len(streams) or 1
        groups: dict[Hashable, list[int]] = {}
        plan: list[list[int]] = []
        for i, (s, c) in enumerate(zip(streams, chunks)):
            k = self.key(s, c)
            if k is None:
                plan.append([i])
                continue
            g = groups.get(k)
            if g is None or len(g) == cap:
                g = groups[k] = []
                plan.append(g)
            g.append(i)
        return plan

    def step_all(self, streams: Sequence[Stream], chunks: Sequence[Tensor],
                 max_batch: int | None = None) -> list[Tensor]:
        """Check each chunk, group compatible streams (at most ``max_batch`` per call), step.

        Raises the first chunk's error before any stream changes: callers check chunks first
        when one bad chunk must not hold back the others.
        """
        for s, c in zip(streams, chunks):
            s.check(c)
        plan = self.plan(streams, chunks, max_batch)
        outs: list[Tensor | None] = [None] * len(streams)
        self.last_groups = [len(idx) for idx in plan]
        for idx in plan:
            for i, y in zip(idx, self.step([streams[i] for i in idx], [chunks[i] for i in idx])):
                outs[i] = y
        return [y for y in outs if y is not None]
