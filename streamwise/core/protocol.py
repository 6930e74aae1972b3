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
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

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

    #: False where outputs depend on the absolute clock itself, not only on its phase (a running
    #: mean over the whole history, say): a server then batches such streams only at equal clocks
    rebase_clocks: bool = True
    #: False where the state holds per-stream counters that a batched step would add up
    stackable: bool = True

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
    def in_channels_expected(self) -> int | None:
        """Channel count (axis 1) the module needs, or None if it takes any."""
        return self.fixed_in_channels

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

    # -- the streaming protocol -------------------------------------------------------------
    def init_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> State:
        """Fresh state for ``batch_size`` independent streams."""
        raise NotImplementedError

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """Consume one chunk ``x`` (any length, 0 included); return the outputs now final.

        A chunk of 0 frames must give 0 frames and change nothing that matters, so containers
        may skip the rest of a pipeline once a layer has nothing to emit.
        """
        raise NotImplementedError

    def flush(self, state: State) -> tuple[Tensor | None, State]:
        """End of stream: emit what lookahead held back (None if the module emits nothing).

        The default suits modules without lookahead: nothing was held back.
        """
        return None, state

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
        ``in_channels``; without it they count one channel.
        """
        return 0

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
