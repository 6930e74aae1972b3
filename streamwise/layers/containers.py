"""Containers that compose streaming modules and align their delays automatically.

``Parallel`` aligns branches by frame index, not by hand-threaded delays: each branch's outputs
wait in a small queue until every branch has produced the same frame, then they are merged.  The
queue of the least-delayed branch holds at most the delay difference, so state stays bounded.
``Residual(body)`` is ``Parallel(body, Identity(), merge="sum")``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule, ceil_frac, empty_output, lcm
from streamwise.core.state import tensor
from streamwise.layers.conv import Conv1d
from streamwise.layers.conv_transpose import ConvTranspose1d
from streamwise.layers.pointwise import Identity, Pointwise
from streamwise.layers.window import keep_tail

_ELEMENTWISE = (
    nn.ReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.PReLU, nn.Dropout,
    nn.Hardtanh, nn.Softplus, nn.Mish, nn.Identity,
)


def as_streaming(module: nn.Module, where: str = "") -> StreamingModule:
    """Return ``module`` as a streaming module: wrap torch layers that have an exact equivalent."""
    if isinstance(module, StreamingModule):
        if module.time_axis != -1:
            raise ValueError(
                f"{where}{type(module).__name__} takes time on axis {module.time_axis}; containers "
                "are time-last: build it with layout='bct'"
            )
        return module
    if isinstance(module, nn.Conv1d):
        return Conv1d.from_torch(module)
    if isinstance(module, nn.ConvTranspose1d):
        return ConvTranspose1d.from_torch(module)
    if isinstance(module, _ELEMENTWISE):
        return Pointwise(module)
    raise TypeError(
        f"{where}{type(module).__name__} is not a StreamingModule: build it from streamwise layers "
        "(sw.Conv1d, sw.Pointwise, ...) or wrap a plain function with sw.Pointwise"
    )


class Sequential(StreamingModule):
    """Modules applied one after another; the delays and strides compose.

    The layers are fixed at construction (their ``step`` methods are looked up once).
    """

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            as_streaming(m, f"Sequential item {i}: ") for i, m in enumerate(modules)
        )
        self._layers: tuple[StreamingModule, ...] = tuple(self.layers)  # type: ignore[arg-type]
        self._steps = tuple(m.step for m in self._layers)  # skips nn.Module lookups per chunk
        # channels of an empty output, to stop early when a layer emits nothing (None: unknown)
        self._empty_channels = self.channels_out(None)

    def __iter__(self) -> Iterator[StreamingModule]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, i: int) -> StreamingModule:
        return self._layers[i]

    @property
    def in_ndim(self) -> int | None:  # type: ignore[override]
        return next((m.in_ndim for m in self._layers if m.in_ndim is not None), None)

    @property
    def fixed_in_channels(self) -> int | None:  # type: ignore[override]
        """The first layer's fixed input channels, read through layers that keep the channel
        count; a layer that maps channels by a rule of its own (an STFT: ``C -> C * F``) ends
        the search: what comes after it says nothing about the model's input."""
        for m in self._layers:
            if m.fixed_in_channels is not None:
                return m.fixed_in_channels
            if m.channels_out(7) != 7:
                return None
        return None

    def _strides_in(self) -> list[Fraction]:
        """Cumulative stride at each layer's input (output frames per model input frame)."""
        out, acc = [], Fraction(1)
        for m in self._layers:
            out.append(acc)
            acc *= m.stride
        return out

    @property
    def stride(self) -> Fraction:
        return functools.reduce(operator.mul, (m.stride for m in self._layers), Fraction(1))

    @property
    def delay(self) -> Fraction:
        return sum((m.delay / s for m, s in zip(self._layers, self._strides_in())), Fraction(0))

    @property
    def receptive_field(self) -> int:
        rf = Fraction(1)
        for m, s in zip(self._layers, self._strides_in()):
            rf += (m.receptive_field - 1) / s
        return ceil_frac(rf)

    @property
    def period(self) -> int:
        p = 1
        for m, s in zip(self._layers, self._strides_in()):
            # p input frames must map to a whole number of m's periods
            need = Fraction(m.period) / s
            p = lcm(p, need.numerator)  # smallest multiple of `need` that is an integer
        return p

    @property
    def exact(self) -> bool:
        return all(m.exact for m in self._layers)

    def channels_out(self, in_channels: int | None) -> int | None:
        for m in self._layers:
            in_channels = m.channels_out(in_channels)
        return in_channels

    def state_spec(self, in_channels: int | None = None) -> tuple[Any, ...]:
        specs = []
        for m in self._layers:
            specs.append(m.state_spec(in_channels))
            in_channels = m.channels_out(in_channels)
        return tuple(specs)

    def forward(self, x: Tensor) -> Tensor:
        for m in self._layers:
            x = m(x)
        return x

    def init_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[Any, ...]:
        return tuple(
            m.init_state(batch_size, device=device, dtype=dtype) for m in self._layers
        )

    def step(self, x: Tensor, state: tuple[Any, ...]) -> tuple[Tensor, tuple[Any, ...]]:
        new = []
        for step, s in zip(self._steps, state):
            x, s = step(x, s)
            new.append(s)
            if not x.shape[-1] and x.dim() == 3 and self._empty_channels is not None:
                # nothing for the rest of the pipeline: its state stays as it is
                new.extend(state[len(new) :])
                return x.new_empty(x.shape[0], self._empty_channels, 0), tuple(new)
        return x, tuple(new)

    def flush(self, state: tuple[Any, ...]) -> tuple[Tensor, tuple[Any, ...]]:
        carry: Tensor | None = None
        new = []
        for m, s in zip(self._layers, state):
            head = None
            if carry is not None:
                head, s = m.step(carry, s)
            tail, s = m.flush(s)
            new.append(s)
            carry = _cat_opt(head, tail)
        return (empty_output(self, state) if carry is None else carry), tuple(new)

    def reset_rows(self, state: tuple[Any, ...], mask: Tensor, start: int) -> tuple[Any, ...]:
        new = []
        for m, s, stride_in in zip(self._layers, state, self._strides_in()):
            frame = start * stride_in
            if frame.denominator != 1:
                raise ValueError(
                    f"reset at frame {start} falls inside a stride of {type(m).__name__}; "
                    f"reset only at multiples of the model's period ({self.period})"
                )
            new.append(m.reset_rows(s, mask, int(frame)))
        return tuple(new)


def _cat_opt(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """``a`` then ``b`` along time; None for no frames (an empty output may not know its batch)."""
    if a is None or not a.shape[-1]:
        return None if b is None or not b.shape[-1] else b
    if b is None or not b.shape[-1]:
        return a
    return torch.cat([a, b], -1)


_MERGES = ("sum", "cat", "mul")


class Parallel(StreamingModule):
    """Branches fed the same input, merged by ``"sum"``, ``"mul"`` or ``"cat"`` (channels).

    Branches may have different delays; they must have equal strides.  Outputs are aligned by
    frame index, so no delay is ever threaded by hand.
    """

    def __init__(self, *branches: nn.Module, merge: str = "sum") -> None:
        super().__init__()
        if not branches:
            raise ValueError("Parallel needs at least one branch")
        if merge not in _MERGES:
            raise ValueError(f"merge must be one of {_MERGES}, got {merge!r}")
        self.branches = nn.ModuleList(
            as_streaming(b, f"Parallel branch {i}: ") for i, b in enumerate(branches)
        )
        self._branches: tuple[StreamingModule, ...] = tuple(self.branches)  # type: ignore[arg-type]
        strides = {b.stride for b in self._branches}
        if len(strides) > 1:
            raise ValueError(
                "Parallel branches must have equal strides to be aligned frame by frame; got "
                + ", ".join(f"branch {i}: {b.stride}" for i, b in enumerate(self._branches))
            )
        self.merge = merge
        self._steps = tuple(b.step for b in self._branches)

    @property
    def in_ndim(self) -> int | None:  # type: ignore[override]
        return next((b.in_ndim for b in self._branches if b.in_ndim is not None), None)

    @property
    def fixed_in_channels(self) -> int | None:  # type: ignore[override]
        return next(
            (b.fixed_in_channels for b in self._branches if b.fixed_in_channels is not None), None
        )

    @property
    def stride(self) -> Fraction:
        return self._branches[0].stride

    @property
    def delay(self) -> Fraction:
        return max(b.delay for b in self._branches)

    @property
    def receptive_field(self) -> int:
        # each branch reads [own time - (rf - 1 - delay), own time + delay]: take the union
        past = max(Fraction(b.receptive_field - 1) - b.delay for b in self._branches)
        return ceil_frac(past + self.delay) + 1

    @property
    def period(self) -> int:
        return functools.reduce(lcm, (b.period for b in self._branches), 1)

    @property
    def exact(self) -> bool:
        return all(b.exact for b in self._branches)

    def channels_out(self, in_channels: int | None) -> int | None:
        outs = [b.channels_out(in_channels) for b in self._branches]
        if self.merge != "cat":
            return next((c for c in outs if c is not None), None)
        return None if None in outs else sum(c for c in outs if c is not None)

    def state_spec(self, in_channels: int | None = None) -> dict[str, Any]:
        queues = []
        for b in self._branches:
            # output frames this branch may run ahead of the slowest one
            frames = ceil_frac((self.delay - b.delay) * self.stride) + 1
            queues.append(tensor("B", b.channels_out(in_channels), frames, grows=-1, lazy=True))
        return {"branches": tuple(b.state_spec(in_channels) for b in self._branches),
                "queues": tuple(queues)}

    def _merge(self, ys: list[Tensor]) -> Tensor:
        if self.merge == "cat":
            return torch.cat(ys, 1)
        op = operator.add if self.merge == "sum" else operator.mul
        return functools.reduce(op, ys)

    def forward(self, x: Tensor) -> Tensor:
        ys = [b(x) for b in self._branches]
        lengths = {y.shape[-1] for y in ys}
        if len(lengths) > 1:
            raise ValueError(
                "Parallel branches produced different lengths "
                f"{[y.shape[-1] for y in ys]}; pad them so every branch keeps the same length"
            )
        return self._merge(ys)

    def init_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict[str, Any]:
        return {
            "branches": tuple(
                b.init_state(batch_size, device=device, dtype=dtype) for b in self._branches
            ),
            "queues": tuple(None for _ in self._branches),
        }

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        ys, states = [], []
        for step, s in zip(self._steps, state["branches"]):
            y, s = step(x, s)
            ys.append(y)
            states.append(s)
        out, queues = self._align(ys, state["queues"])
        return out, {"branches": tuple(states), "queues": queues}

    def flush(self, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        tails, states = [], []
        for b, s, q in zip(self._branches, state["branches"], state["queues"]):
            y, s = b.flush(s)
            tails.append(_cat_opt(q, y))
            states.append(s)
        new = {"branches": tuple(states), "queues": tuple(None for _ in self._branches)}
        present = [t for t in tails if t is not None and t.shape[-1]]
        if not present:
            return empty_output(self, state), new
        lengths = [0 if t is None else t.shape[-1] for t in tails]
        if len(set(lengths)) > 1:
            raise RuntimeError(f"Parallel branches ended with different lengths {lengths}")
        return self._merge(tails), new  # type: ignore[arg-type]

    def _align(
        self, ys: list[Tensor], queues: tuple[Tensor | None, ...]
    ) -> tuple[Tensor, tuple[Tensor | None, ...]]:
        full = [
            y if q is None or not q.shape[-1] else torch.cat([q, y], -1) for y, q in zip(ys, queues)
        ]
        m = min(f.shape[-1] for f in full)
        if all(f.shape[-1] == m for f in full):
            return self._merge(full), tuple(None for _ in full)
        return self._merge([f[..., :m] for f in full]), tuple(keep_tail(f, m) for f in full)

    def reset_rows(self, state: dict[str, Any], mask: Tensor, start: int) -> dict[str, Any]:
        return {
            "branches": tuple(
                b.reset_rows(s, mask, start) for b, s in zip(self._branches, state["branches"])
            ),
            "queues": state["queues"],
        }


class Residual(Parallel):
    """``body(x) + x``, the skip path delayed automatically to meet the body's output."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__(body, Identity(), merge="sum")
        if self.stride != 1:
            raise ValueError(
                f"Residual body must keep the frame rate (stride 1), got {self.stride}"
            )
