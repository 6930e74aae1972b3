"""``WindowStream``: stream a model that cannot be rewritten by re-running overlapping windows.

Per-window normalisation, bidirectional layers or anything opaque can still stream when each output
frame depends on a finite neighbourhood of input frames (``left`` before, ``right`` after, the
model's context).  Once ``hop`` new outputs have their full context, the model runs on a window of
up to ``window`` frames starting ``left`` frames before the first output not yet emitted; only
outputs whose whole context lies inside the window are kept.  The first window starts at the
stream's start and the last ends at its end, where the offline model sees the same boundaries, so
the stitched output equals the offline one exactly when the context is right
(``window >= hop + left + right`` is required).  ``find_context`` measures the context by
perturbation; where it is unbounded, ``measure`` reports the error instead of promising exactness.
An ``align`` hook may adjust each window's output against the previous one over their overlap
before stitching (per-window alignment, as LASER does: ``convert/scale_align.py``'s
``ScaleAlign`` matches each depth-like layer's scale).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from fractions import Fraction

import torch
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule, empty_output
from streamwise.core.state import ANY, INF, Spec, clock, const, tensor

Align = Callable[[Tensor, Tensor], Tensor]


@torch.no_grad()
def find_context(model: nn.Module, channels: int, length: int = 256, trials: int = 3,
                 seed: int = 0) -> tuple[int, int] | None:
    """``(left, right)``: how many input frames before and after an output frame change it.

    Perturbs one frame in the middle of random ``[1, channels, length]`` inputs (float64) and
    sees which outputs move.  None when the change reaches an end of the sequence (the context is
    unbounded or longer than ``length // 2``).
    """
    gen = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(model).double().eval()  # the caller's model keeps its dtype
    c, left, right = length // 2, 0, 0
    for _ in range(trials):
        x = torch.randn(1, channels, length, generator=gen, dtype=torch.float64)
        y = model(x)
        if y.shape[-1] != length:
            raise ValueError(f"WindowStream needs one output frame per input frame; the model "
                             f"maps {length} frames to {y.shape[-1]}")
        x2 = x.clone()
        x2[..., c] += torch.randn(channels, generator=gen, dtype=torch.float64) * 3
        moved = ((model(x2) - y).abs().amax(dim=tuple(range(y.dim() - 1))) > 0).nonzero()
        if not moved.numel():
            continue
        lo, hi = int(moved.min()), int(moved.max())
        if lo == 0 or hi == length - 1:
            return None
        left, right = max(left, hi - c), max(right, c - lo)
    return left, right


class WindowStream(StreamingModule):
    """Streams ``model`` (``[B, C, T] -> [B, C', T]``) by recomputing overlapping windows."""

    in_ndim = 3

    def __init__(self, model: nn.Module, window: int, hop: int,
                 context: tuple[int, int] | None = None, align: Align | None = None) -> None:
        super().__init__()
        if hop < 1 or window < hop:
            raise ValueError(f"need 1 <= hop <= window, got hop {hop}, window {window}")
        self.model, self.window, self.hop, self.align = model, window, hop, align
        self.left, self.right = context if context is not None else (0, 0)
        self.context_known = context is not None
        if window < hop + self.left + self.right:
            raise ValueError(f"window {window} is shorter than hop + context ({hop} + "
                             f"{self.left} + {self.right}): outputs would lack context")

    @property
    def delay(self) -> Fraction:
        return Fraction(self.right + self.hop - 1)

    @property
    def receptive_field(self) -> int:
        return self.left + self.right + 1

    @property
    def exact(self) -> bool:
        return self.context_known

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def state_spec(self, in_channels: int | None = None) -> Spec:
        # the windows read absolute frames (the first starts at 0): batched at equal clocks only
        return {"hist": tensor("B", ANY, INF, grows=-1, lazy=True),  # (bound not derived)
                "hist_start": clock(rebase=False), "t_in": clock(rebase=False),
                "emitted": clock(rebase=False),
                # the last window's output and start, for ``align`` (made on the first window)
                "prev": const(None)}

    def _run(self, state: dict, final: bool) -> tuple[Tensor, dict]:
        """One window from ``left`` frames before the first unemitted output; emit the trusted."""
        hist, start, t_in, lo = state["hist"], state["hist_start"], state["t_in"], state["emitted"]
        w0 = max(0, lo - self.left)
        end = min(t_in, w0 + self.window)
        y = self.model(hist[..., w0 - start : end - start])
        if self.align is not None and state["prev"] is not None:
            prev, prev_w0 = state["prev"]
            y = self.align(prev[..., w0 - prev_w0 :], y)
        upto = end if (final and end == t_in) else end - self.right
        keep = max(0, upto - self.left)  # the next window starts here at the earliest
        new = {**state, "hist": hist[..., keep - start :], "hist_start": keep, "emitted": upto,
               "prev": (y, w0) if self.align is not None else None}
        return y[..., lo - w0 : upto - w0], new

    def step(self, x: Tensor, state: dict) -> tuple[Tensor, dict]:
        hist = x if state["hist"] is None else torch.cat([state["hist"], x], -1)
        state = {**state, "hist": hist, "t_in": state["t_in"] + x.shape[-1]}
        outs = []
        with torch.no_grad():
            while state["t_in"] - self.right - state["emitted"] >= self.hop:
                y, state = self._run(state, final=False)
                outs.append(y)
        if outs:
            return torch.cat(outs, -1), state
        return self._empty(x), state

    def _empty(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            probe = self.model(x.new_zeros(x.shape[0], x.shape[1], max(1, self.window)))
        return probe[..., :0]

    def flush(self, state: dict) -> tuple[Tensor, dict]:
        outs = []
        with torch.no_grad():
            while state["hist"] is not None and state["emitted"] < state["t_in"]:
                y, state = self._run(state, final=True)
                outs.append(y)
        return (torch.cat(outs, -1) if outs else empty_output(self, state)), state

    @torch.no_grad()
    def measure(self, x: Tensor, chunk: int | None = None) -> float:
        """Max abs difference between this stream and the offline model on ``x``."""
        from streamwise.core.verify import stream_chunks

        n = chunk or self.hop
        sizes = [n] * (x.shape[-1] // n) + ([x.shape[-1] % n] if x.shape[-1] % n else [])
        y, _ = stream_chunks(self, x, sizes)
        return float((y - self.model(x)).abs().max())
