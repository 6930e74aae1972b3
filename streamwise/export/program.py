"""A streaming model as three fixed-shape programs: ``start``, ``step`` and ``flush``.

An exported runtime cannot run Python, so the chunk size, the shapes of the state and every
branch of a module's ``step`` must be the same on every call.  They are, once a stream is warm:
with a fixed chunk of ``N`` input frames (a multiple of the model's period), every buffer holds
the same number of frames after each chunk and every clock advances by the same amount.  Only
the first frames differ (buffers fill, lookahead holds outputs back), so a stream is three calls:

- ``start(x[P]) -> (y, state...)``: the eager ``step`` of the first ``P`` frames from a fresh
  state, ``P`` the fewest multiple of ``N`` after which the state is warm;
- ``step(x[N], state...) -> (y, new_state...)``: the warm step, repeated;
- ``flush(state...) -> y``: what lookahead held back at the end.

The state passed between them is the warm state's tensors, by path (``state.<path>``, see
``state_names``).  Clocks and other Python values of the state are not inputs: in a warm state
they only advance, and the graphs never read them (checked: ``check_program`` runs the programs
against the eager stream).  Each program is the eager code itself, traced; nothing is written
twice.  A stream of ``T`` frames is exact when ``T >= P`` and ``T`` is a multiple of ``N``
(``Contract.exact_lengths``); for a model without lookahead any ``T >= P``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor, nn

from streamwise.core import state as spec_tools
from streamwise.core.protocol import State, StreamingModule
from streamwise.core.state import Path

#: most warm-up chunks tried before a model is called one that never settles
MAX_WARM_CHUNKS = 64


class NotExportableError(ValueError):
    """A model (or a chunk size) that cannot become fixed-shape programs; names why."""


def path_name(path: Path) -> str:
    """``("nodes", "conv_1", "buf")`` -> ``"nodes.conv_1.buf"``."""
    return ".".join(str(k) for k in path)


@dataclass(frozen=True)
class Leaf:
    """One tensor of the exported state: its path, shape for one row, dtype and batch axis."""

    path: Path
    #: with the batch axis at its size for one row: 1, or k where a view folds k values per
    #: row into the batch axis (``[B * k, ...]``)
    shape: tuple[int, ...]
    dtype: torch.dtype
    batch_axis: int | None

    @property
    def name(self) -> str:
        return path_name(self.path)


@dataclass
class Program:
    """The facts ``export`` needs: sizes, the warm state's layout and a template state."""

    model: StreamingModule
    chunk: int
    prologue: int  # P: input frames of the start program
    out_start: int  # output frames the start program gives (for a batch)
    out_step: int  # output frames each step gives
    out_flush: int  # output frames flush gives
    leaves: list[Leaf]
    template: State  # a warm state (the Python values of the programs come from it)
    dtype: torch.dtype
    in_shape: tuple[int, ...]  # one input frame's shape besides batch and time
    out_shape: tuple[int, ...]  # one output frame's shape besides batch and time
    time_axis: int
    out_time_axis: int

    @property
    def state_names(self) -> list[str]:
        return [leaf.name for leaf in self.leaves]

    def flat(self, state: State) -> list[Tensor]:
        """The state's tensors in ``leaves`` order."""
        return [spec_tools.get(state, leaf.path) for leaf in self.leaves]

    def unflat(self, tensors: list[Tensor] | tuple[Tensor, ...]) -> State:
        """A state of the template's structure with ``tensors`` at the exported paths."""
        new = dict(spec_tools.leaves(self.template))
        for leaf, t in zip(self.leaves, tensors):
            new[leaf.path] = t
        return spec_tools.rebuild(self.template, new)

    def input_shape(self, batch: int, frames: int) -> list[int]:
        """The shape of an input chunk of ``frames`` frames."""
        shape = [batch, *self.in_shape]
        shape.insert(self.time_axis % (len(shape) + 1), frames)
        return shape


def valid_chunks(period: int, near: int) -> list[int]:
    """Multiples of ``period`` nearest ``near`` (for the refusal of a chunk size)."""
    low = max(period, near // period * period)
    return sorted({low, low + period} - {near})


def inexact_reason(model: StreamingModule) -> str:
    """Why an inexact model cannot be exported, naming the innermost inexact layer (and its
    cache policy, for attention) and what to use instead."""
    inner = [(name, m) for name, m in model.named_modules()
             if isinstance(m, StreamingModule) and not m.exact
             and not any(isinstance(c, StreamingModule) and not c.exact for c in m.children())]
    name, layer = inner[0] if inner else ("", model)
    where = f"{type(layer).__name__}{f' ({name})' if name else ''}"
    policy = getattr(layer, "policy", None)
    if policy is not None:
        return (f"{where} uses the cache {policy!r}, which decides from the keys' content which "
                "entries to keep (its state's size and order depend on the data) and only "
                "approximates the offline forward: an export needs fixed-shape state and an exact "
                "stream; export a Window, Sinks or Chunked cache instead, or serve this one with "
                "the torch runtime")
    return (f"{where} only approximates its offline forward (exact=False); an export needs an "
            "exact stream: run it with the torch runtime")


def plan(model: StreamingModule, chunk: int, example: Tensor) -> Program:
    """Warm ``model`` up chunk by chunk on ``example``'s frame shape and record the layout.

    ``example`` is one input of at least one frame (its batch, dtype and frame shape are used)."""
    if not isinstance(model, StreamingModule):
        raise NotExportableError(f"export takes a StreamingModule (sw.convert's output or a "
                                 f"streamwise layer), got {type(model).__name__}")
    period = model.period
    if chunk < 1 or chunk % period:
        raise NotExportableError(
            f"chunk={chunk} is not a multiple of the model's period ({period} input frames); "
            f"valid sizes near it: {valid_chunks(period, chunk)}")
    if not model.exact:
        raise NotExportableError(inexact_reason(model))
    axis = model.time_axis % example.dim()
    frame = tuple(s for i, s in enumerate(example.shape) if i != axis)
    batch, dtype = example.shape[0], example.dtype

    def chunk_of(n: int) -> Tensor:
        shape = list(frame)
        shape.insert(axis, n)
        g = torch.Generator().manual_seed(n)
        return torch.randn(shape, generator=g, dtype=dtype).to(example.device)

    state = model.init_state(batch, device=example.device, dtype=dtype)
    outs: list[int] = []
    layouts: list[Any] = []
    with torch.no_grad():  # not inference_mode: the warm state is traced with later
        for _ in range(MAX_WARM_CHUNKS + 2):
            y, state = model.step(chunk_of(chunk), state)
            outs.append(y.shape[model.out_time_axis])
            out_axis = model.out_time_axis % y.dim()
            out_frame = tuple(s for i, s in enumerate(y.shape) if i not in (0, out_axis))
            layouts.append(_layout(state))
            k = len(layouts)
            # warm: the same layout and output count for two more chunks
            if k >= 3 and layouts[-1] == layouts[-2] == layouts[-3] and outs[-1] == outs[-2]:
                break
        else:
            raise NotExportableError(_unsettled(model, layouts, chunk))
    warm = max(len(layouts) - 2, 1)  # chunks after which the layout no longer changes
    bad = [path_name(p) for p, v in spec_tools.leaves(state)
           if not isinstance(v, (Tensor, int, float, bool, str, type(None), Fraction))]
    if bad:
        raise NotExportableError(f"state leaf {bad[0]} holds a "
                                 f"{type(spec_tools.get(state, _path(state, bad[0]))).__name__}, "
                                 "not a tensor or a Python number")
    try:
        declared = spec_tools.batch_axes(model.state_spec())
    except NotImplementedError:
        declared = {}
    leaves = []
    for p, v in spec_tools.leaves(state):
        if isinstance(v, Tensor):
            ax = declared.get(p, 0)
            if ax is not None and (ax >= v.dim() or v.shape[ax] % batch):
                ax = _batch_axis(v, batch)
            rows = 1 if ax is None else v.shape[ax] // batch  # rows of a batch folded in
            leaves.append(Leaf(p, tuple(rows if i == ax else s for i, s in enumerate(v.shape)),
                               v.dtype, ax))
    with torch.no_grad():
        out_flush = model.flush(state)[0].shape[model.out_time_axis]
    return Program(model, chunk, warm * chunk, sum(outs[:warm]), outs[-1], out_flush, leaves,
                   state, dtype, frame[1:], out_frame, model.time_axis, model.out_time_axis)


def _path(state: State, name: str) -> Path:
    return next(p for p, _ in spec_tools.leaves(state) if path_name(p) == name)


def _batch_axis(t: Tensor, batch: int) -> int | None:
    """A state tensor's batch axis: its first axis, where its size is a multiple of the batch."""
    return 0 if t.dim() and t.shape[0] and t.shape[0] % batch == 0 else None


def _layout(state: State) -> dict[Path, Any]:
    """What must not change between warm steps: tensor shapes and dtypes, unset leaves."""
    out: dict[Path, Any] = {}
    for p, v in spec_tools.leaves(state):
        if isinstance(v, Tensor):
            out[p] = (tuple(v.shape), v.dtype)
        elif v is None:
            out[p] = None
        else:
            out[p] = "value"
    return out


def _unsettled(model: StreamingModule, layouts: list[dict[Path, Any]], chunk: int) -> str:
    name = type(model).__name__
    cycle = next((k for k in range(2, 17)
                  if layouts[-1] == layouts[-1 - k] == layouts[-1 - 2 * k]), None)
    if cycle is not None:  # inner strides the model's period does not show
        return (f"{name}'s state repeats only every {cycle} chunks of {chunk} frames (strided "
                f"layers inside it have a longer phase than its period, {model.period}): "
                f"export with chunk={chunk * cycle} or a multiple of it")
    a, b = layouts[-2], layouts[-1]
    moving = [p for p in b if a.get(p) != b[p]] or list(set(a) ^ set(b))
    what = f"{path_name(moving[0])} ({a.get(moving[0])} -> {b.get(moving[0])})" if moving else "?"
    return (f"{name}'s state never settles to fixed shapes: after {MAX_WARM_CHUNKS} chunks "
            f"{what} still changes; a state that grows (a full attention cache, Retrieve or "
            "Merge caches) cannot be fixed-shape tensors: use a bounded policy (Window, Sinks, "
            "Chunked) or stream it in torch")


# -- the three programs as modules (what torch.export traces) ------------------------------------
class StartProgram(nn.Module):
    """``start(x[P]) -> (y, state...)``: the first ``P`` frames from a fresh state."""

    def __init__(self, program: Program) -> None:
        super().__init__()
        self.model = program.model
        self.program = program

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        p = self.program
        state = p.model.init_state(x.shape[0], device=x.device, dtype=x.dtype)
        y, state = p.model.step(x, state)
        return (y, *p.flat(state))


class StepProgram(nn.Module):
    """``step(x[N], state...) -> (y, new_state...)``: one warm chunk."""

    def __init__(self, program: Program) -> None:
        super().__init__()
        self.model = program.model
        self.program = program

    def forward(self, x: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        p = self.program
        y, new = p.model.step(x, p.unflat(state))
        return (y, *p.flat(new))


class FlushProgram(nn.Module):
    """``flush(state...) -> y``: the end of a stream (what lookahead held back)."""

    def __init__(self, program: Program) -> None:
        super().__init__()
        self.model = program.model
        self.program = program

    def forward(self, *state: Tensor) -> Tensor:
        p = self.program
        y, _ = p.model.flush(p.unflat(state))
        return y
