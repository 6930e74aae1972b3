"""The one protocol every streaming component follows: offline ``forward`` plus pure ``step``.

A module turns an unbounded stream into chunks of output.  ``forward`` runs a whole sequence at
once (training, batch inference); ``init_state`` / ``step`` / ``flush`` run the same computation
chunk by chunk.  ``step`` is pure: it never mutates the state it is given, it returns a new one.
That makes batching, snapshots, rollbacks of rejected chunks and per-row resets free.

Time is the last axis of every tensor this package streams (``[B, C, T]`` or ``[B, C, F, T]``),
except where a module says otherwise in ``time_axis`` (attention takes ``[B, T, C]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from streamwise.core import state as spec_tools
from streamwise.core.state import Spec

if TYPE_CHECKING:
    from streamwise.core.stream import Stream

# A state is a small pytree: dicts, tuples and lists whose leaves are tensors, ints, floats or None.
State = Any


class NotStreamableError(ValueError):
    """Raised at construction for a layer that cannot run on a stream exactly."""


def tree_map(fn: Callable[[Tensor], Any], state: State) -> State:
    """Apply ``fn`` to every tensor leaf of a state and keep the rest of the tree as it is."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: tree_map(fn, v) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(tree_map(fn, v) for v in state)
    return state


def tree_tensors(state: State) -> list[Tensor]:
    """All tensor leaves of a state, in a fixed order."""
    out: list[Tensor] = []
    tree_map(out.append, state)
    return out


def tree_nbytes(state: State) -> int:
    """Bytes held by the tensors of a state (what a snapshot of it costs, roughly)."""
    return sum(t.numel() * t.element_size() for t in tree_tensors(state))


def itemsize(dtype: torch.dtype) -> int:
    """Bytes per element of ``dtype``."""
    return torch.empty((), dtype=dtype).element_size()


def ceil_frac(x: Fraction) -> int:
    """Smallest integer >= x."""
    return -((-x.numerator) // x.denominator)


def lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


@dataclass(frozen=True)
class Meta:
    """A streaming module's static facts, in input frames (see ``StreamingModule``)."""

    delay: Fraction
    stride: Fraction
    receptive_field: int
    period: int
    exact: bool
    time_axis: int
    out_time_axis: int
    in_ndim: int | None
    in_channels: int | None
    out_channels: int | None
    #: outputs come before their own time (more left padding than a kernel span): rows of a
    #: batch cannot be restarted one by one
    emits_early: bool


class StreamingModule(nn.Module):
    """Base class: an ``nn.Module`` whose ``forward`` can also be computed chunk by chunk.

    Static metadata, in input frames, computed from the layer's own hyper-parameters:

    - ``delay``: lookahead, how many input frames past an output's own time must arrive before it
      is emitted (0 = causal).  A ``Fraction`` because upsampling layers work in sub-frames.
    - ``stride``: output frames per input frame (``Fraction(1, 2)`` halves the rate).
    - ``receptive_field``: how many consecutive input frames one output depends on.
    - ``period``: after how many input frames the module's internal phase repeats; per-row
      resets are only possible at multiples of it (rows of one batch share one clock).
    """

    #: rank of the tensors the module takes, time last (3 for ``[B, C, T]``), or None for any.
    in_ndim: int | None = None

    #: channels (axis 1) taken and emitted, where the module's parameters fix them
    fixed_in_channels: int | None = None
    fixed_out_channels: int | None = None

    @property
    def time_axis(self) -> int:
        """The axis that is time: -1 (the package's convention), 1 for ``[B, T, C]`` modules."""
        return -1

    @property
    def out_time_axis(self) -> int:
        """The axis that is time in the outputs (the input's, unless a module says otherwise)."""
        return self.time_axis

    @property
    def delay(self) -> Fraction:
        return Fraction(0)

    @property
    def stride(self) -> Fraction:
        return Fraction(1)

    @property
    def receptive_field(self) -> int:
        return 1

    @property
    def period(self) -> int:
        return 1

    @property
    def exact(self) -> bool:
        """True when streamed output equals ``forward`` up to float rounding."""
        return True

    @property
    def emits_early(self) -> bool:
        """True when some output comes before its own time (it reads only padding and the past),
        which a per-row restart cannot undo."""
        return False

    @property
    def meta(self) -> Meta:
        """Every static fact at once, frozen."""
        return Meta(self.delay, self.stride, self.receptive_field, self.period, self.exact,
                    self.time_axis, self.out_time_axis, self.in_ndim, self.fixed_in_channels,
                    self.channels_out(self.fixed_in_channels), self.emits_early)

    # -- the streaming protocol -------------------------------------------------------------
    def state_spec(self, in_channels: int | None = None) -> Spec:
        """The declaration of this module's state (``core/state.py``), for inputs of
        ``in_channels`` channels (None: unknown, sizes that depend on it are None)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its state")

    def init_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> State:
        """Fresh state for ``batch_size`` independent streams, built from ``state_spec``."""
        dev, dt = param_dtype_device(self, device, dtype)
        return spec_tools.build(self.state_spec(), batch_size, dev, dt)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """Consume one chunk ``x`` (any length, 0 included); return the outputs now final.

        A chunk of 0 frames must give 0 frames and change nothing that matters, so containers
        may skip the rest of a pipeline once a layer has nothing to emit.
        """
        raise NotImplementedError

    def flush(self, state: State) -> tuple[Tensor, State]:
        """End of stream: emit what lookahead held back (a tensor empty along time if nothing).

        The default suits modules without lookahead: nothing was held back.
        """
        return empty_output(self, state), state

    def reset_rows(self, state: State, mask: Tensor, start: int) -> State:
        """Restart the rows in ``mask``: their new stream begins at input frame ``start``.

        ``start`` counts frames on the batch's shared clock, as seen at this module's input.
        Frames before ``start`` are treated, for those rows, as the padding before a stream.
        """
        return state

    def channels_out(self, in_channels: int | None) -> int | None:
        """Channels this module emits when fed ``in_channels`` (None where unknown)."""
        return in_channels if self.fixed_out_channels is None else self.fixed_out_channels

    def state_nbytes(
        self,
        batch_size: int,
        dtype: torch.dtype = torch.float32,
        in_channels: int | None = None,
    ) -> int:
        """Upper bound on the bytes of this module's state for ``batch_size`` streams.

        Layers whose state size depends on the input's channel count (pools, say) need
        ``in_channels``; without it they count one channel.  0 where the state grows without
        bound (a full attention cache).  Computed from ``state_spec``.
        """
        n = spec_tools.nbytes(self.state_spec(in_channels), batch_size, dtype)
        return 0 if n is None else n

    # -- convenience ----------------------------------------------------------------------------
    def stream(
        self,
        batch_size: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        check_finite: bool = False,
    ) -> Stream:
        """A stateful handle: ``push`` chunks, ``close`` at the end, ``snapshot`` any time."""
        from streamwise.core.stream import Stream

        return Stream(
            self, batch_size, device=device, dtype=dtype, check_finite=check_finite
        )

    def extra_metadata(self) -> str:
        """The static facts for ``extra_repr``."""
        return f"delay={self.delay}, stride={self.stride}, rf={self.receptive_field}"


def param_dtype_device(
    module: nn.Module,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> tuple[torch.device, torch.dtype]:
    """The device and dtype a state should use: given ones, else the module's parameters'."""
    p = next(module.parameters(), None)
    if dtype is None:
        dtype = p.dtype if p is not None else torch.get_default_dtype()
    if device is None:
        device = p.device if p is not None else torch.device("cpu")
    return torch.device(device), dtype


def empty_output(module: StreamingModule, state: State, like: Tensor | None = None) -> Tensor:
    """An output of no frames for a stream in ``state``, shaped ``[B, C_out, (F,) 0]`` (or
    ``[B, 0, C_out]`` time-first), on the state's device and dtype where it holds a tensor
    (``like``: a tensor of the stream's to take them from).  A state without tensors (a
    stateless layer's) does not know its batch: the result then has one row."""
    try:
        declared = spec_tools.leaves(module.state_spec())
    except NotImplementedError:  # an undeclared state: its tensors' first axis is the batch
        declared = [(p, spec_tools.tensor("B")) for p, _ in spec_tools.leaves(state)]
    batch, ref = 1, like
    for path, leaf in declared:
        v = spec_tools.get(state, path)
        if leaf.kind == "tensor" and isinstance(v, Tensor):
            if leaf.batch_axis is not None:
                batch = v.shape[leaf.batch_axis]
            if ref is None or (v.is_floating_point() and not ref.is_floating_point()):
                ref = v
            if leaf.batch_axis is not None and ref.is_floating_point():
                break
    if like is not None:
        batch = like.shape[0]
    device = ref.device if ref is not None else torch.device("cpu")
    if ref is not None and ref.is_floating_point():
        dtype = ref.dtype
    else:
        dtype = param_dtype_device(module, None, None)[1]
    ch = module.channels_out(None) or 0
    if module.out_time_axis == 1:
        shape = [batch, 0, ch]
    else:
        shape = [batch, ch, 0, 0] if module.in_ndim == 4 else [batch, ch, 0]
    return torch.empty(shape, device=device, dtype=dtype)


def row_starts(batch_size: int, device: torch.device) -> Tensor:
    """Per-row stream start on the shared clock (all rows start at frame 0)."""
    return torch.zeros(batch_size, dtype=torch.long, device=device)


def with_reset_rows(state: dict[str, Any], mask: Tensor, start: int) -> dict[str, Any]:
    """Return ``state`` with ``start`` set for the masked rows (for modules that track it)."""
    new = dict(state)
    starts = torch.where(mask.to(state["start"].device), start, state["start"])
    new["start"] = starts
    new["start_max"] = int(starts.max().item()) if starts.numel() else 0
    return new
