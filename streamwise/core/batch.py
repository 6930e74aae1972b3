"""Step many independent streams in one batched ``step``: stack their states, scatter back.

State is data, and every module declares it (``core/state.py``), so sessions that a server holds
one by one can share one call: their tensors are concatenated along each leaf's declared batch
axis, the model steps once, and the new state is split again.  Two streams may share a call when
their states have the same structure and shapes (past warm-up, at the same phase of the model's
period).  Declared *clocks* (absolute frame counters) differ between streams that started at
different times; only their increments matter once the buffers are full, so the batch runs on the
first stream's clocks and every stream gets its own clocks advanced by the same amount, unless a
clock is declared ``rebase=False`` (outputs read its value), where streams share a step only at
equal clocks.  Streams holding a per-stream counter, a row restart on the absolute clock, or a
large tensor shared by all rows step alone (a small one, like the segment ids an attention holds
for its partial chunk, is compared by value: streams stack where it agrees).  The test-suite
checks batched == one-by-one.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from streamwise.core.protocol import State, StreamingModule, ceil_frac
from streamwise.core.state import Path, clock_path, leaves, rebuild
from streamwise.core.stream import Stream

__all__ = ["StateBatcher", "leaves", "rebuild"]

SHARED_MAX = 64  # a tensor shared by all rows this small is compared by value for stacking


class _Held:
    """Placeholder for ``Stream.state`` while the stream's state is a row of a resident batch."""

    def __repr__(self) -> str:
        return "<state held in a batch: StateBatcher.materialize(stream) first>"


_HELD = _Held()


class _Resident:
    """The stacked state of streams that last stepped together (immutable once made)."""

    def __init__(self, state: State, items: dict[Path, Any], axes: dict[Path, int | None],
                 clocks: dict[Path, list[int]]) -> None:
        self.state, self.leaves, self.axes, self.clocks = state, items, axes, clocks
        self._structure: dict[bool, tuple[Hashable, ...] | None] = {}

    def structure(self, batcher: StateBatcher, warm: bool) -> tuple[Hashable, ...] | None:
        if warm not in self._structure:  # rows share shapes; cold rows also share clocks
            self._structure[warm] = batcher._structure(list(self.leaves.items()), warm)
        return self._structure[warm]


class StateBatcher:
    """Groups streams of one model whose states can be stacked, and steps each group at once."""

    def __init__(self, model: StreamingModule) -> None:
        self.model = model
        self.period = period = model.period  # cached: containers compute it with Fractions
        need = model.receptive_field + ceil_frac(model.delay) + period
        #: input frames a stream must have consumed before its clocks may differ from its peers'
        self.warm_frames = -(-need // period) * period
        self.last_groups: list[int] = []  # group sizes of the last ``step_all``
        declared = dict(leaves(model.state_spec()))
        #: path -> batch axis of every tensor leaf (None: one tensor shared by all rows)
        self.axes: dict[Path, int | None] = {
            p: leaf.batch_axis for p, leaf in declared.items() if leaf.kind == "tensor"}
        self._clocks = frozenset(p for p, leaf in declared.items() if leaf.kind == "clock")
        #: tensor leaf -> the clock its values are frames of (moved with it when rebased)
        self._on_clock: dict[Path, Path] = {
            p: c for p, leaf in declared.items() if (c := clock_path(p, leaf)) is not None}
        self._restarts = frozenset(p for p, leaf in declared.items() if leaf.kind == "restart")
        #: clocks may differ within a batch (False: some output reads a clock's value)
        self.rebase = all(declared[p].rebase for p in self._clocks)
        #: whether streams of this model can share a step at all (no per-stream counter)
        self.stackable = not any(leaf.per_stream for leaf in declared.values())
        self._rows: weakref.WeakKeyDictionary[Stream, tuple[_Resident, int]] = (
            weakref.WeakKeyDictionary()
        )

    # -- grouping ---------------------------------------------------------------------------------
    def _structure(self, items: Sequence[tuple[Path, Any]], warm: bool
                   ) -> tuple[Hashable, ...] | None:
        """What must match for two states to stack: shapes off the batch axis, non-clock values."""
        parts: list[Hashable] = []
        for path, v in items:
            if isinstance(v, Tensor):
                if path not in self.axes:  # not declared: this stream steps alone
                    return None
                ax = self.axes[path]
                if ax is None:  # one small tensor for all rows: stack where the values agree
                    if v.numel() > SHARED_MAX:
                        return None
                    parts.append((path, "shared", str(v.dtype), tuple(v.flatten().tolist())))
                    continue
                shape = tuple(s for i, s in enumerate(v.shape) if i != ax)
                parts.append((path, shape, str(v.dtype)))
            elif path in self._restarts and v > 0:
                return None  # a row was reset (Stream.reset): its start is on an absolute clock
            elif warm and path in self._clocks:
                parts.append((path, "clock"))
            else:
                parts.append((path, v))
        return tuple(parts)

    def key(self, stream: Stream, chunk: Tensor) -> Hashable | None:
        """Streams with equal keys can be stepped together with these chunks (None: alone)."""
        if stream.batch_size != 1 or stream.closed or not self.stackable:
            return None
        frame_shape = tuple(chunk.shape[1:-1])
        warm = self.rebase and stream.frames_in >= self.warm_frames
        ref = self._rows.get(stream)
        if ref is not None:
            structure = ref[0].structure(self, warm)
        else:
            structure = self._structure(leaves(stream.state), warm)
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

    def _row(self, res: _Resident, row: int, copy: bool) -> State:
        mine: dict[Path, Any] = {}
        for path, v in res.leaves.items():
            if isinstance(v, Tensor):
                ax = res.axes[path]
                t = v if ax is None else v.narrow(ax, row, 1)  # shared: equal for every row
                cp = self._on_clock.get(path)
                if cp is not None and res.clocks[cp][row] != res.leaves[cp]:
                    t = t + (res.clocks[cp][row] - res.leaves[cp])  # back on the row's clock
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
        axes = self.axes
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
            if isinstance(lead, Tensor) and axes[path] is None:
                stacked[path] = lead  # a shared tensor, equal for every stream (in the key)
            elif isinstance(lead, Tensor):
                ax = axes[path]
                assert ax is not None
                parts = []
                cp = self._on_clock.get(path)
                lead_clock = self._lead_clock(cp, sources, own_leaves, own)
                for res, rows, _ in sources.values():
                    t = res.leaves[path]
                    if rows != list(range(t.shape[ax])):
                        t = t.index_select(ax, torch.tensor(rows, device=t.device))
                    if cp is not None and res.leaves[cp] != lead_clock:
                        t = t + (lead_clock - res.leaves[cp])  # onto the batch's clock
                    parts.append(t)
                for i in own:
                    t = own_leaves[i][path]
                    if cp is not None and own_leaves[i][cp] != lead_clock:
                        t = t + (lead_clock - own_leaves[i][cp])
                    parts.append(t)
                stacked[path] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=ax)
            elif path in self._clocks:
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

    @staticmethod
    def _lead_clock(cp: Path | None, sources: dict[int, tuple[_Resident, list[int], list[int]]],
                    own_leaves: dict[int, dict[Path, Any]], own: list[int]) -> int:
        """The clock ``cp`` of the batch's first stream (the clock the batch runs on)."""
        if cp is None:
            return 0
        if sources:
            res, rows, _ = next(iter(sources.values()))
            return int(res.clocks[cp][rows[0]])
        return int(own_leaves[own[0]][cp])

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
