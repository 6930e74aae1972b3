"""``PropagatedMemory``: clip-wise encoding with a propagated memory, and memory selection per
question (VideoStreaming's memory-propagated streaming encoding and adaptive memory selection).

A stream of frame features ``[B, T, C]`` is cut into clips of ``clip`` frames on the absolute
clock (clip ``i`` holds frames ``i*clip .. i*clip + clip - 1``).  Clip ``i`` is encoded together
with the memory ``m_{i-1}`` (``memory`` tokens) the previous clip left and ``memory`` learned
query tokens ``q``, all attending to each other (bidirectional within the clip):

    h   = Encoder([m_{i-1}; W_in x_i; q] + P)     (P: a learned embedding per slot)
    m_i = h[-memory:]                             (the queries' outputs: the new memory)

with ``m_0`` learned.  Each clip emits its memory, flattened to ``[B, T // clip, memory * dim]``:
a condensed representation of the stream up to the clip's end, a constant number of tokens
whatever the stream's length.  ``select(memories, question, k)`` is the adaptive memory
selection: the ``k`` clip memories whose mean token is most similar (cosine) to the question's
embedding, in time order: what a language model reads instead of the whole stream.

Streaming keeps at most ``clip - 1`` frames and the last memory; a clip is encoded once its last
frame has arrived (delay ``clip - 1``), exactly as ``forward`` encodes it, so the outputs equal
the offline ones for every chunking.  Frames after the last whole clip are never encoded.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule
from streamwise.core.state import Spec, clock, tensor


class PropagatedMemory(StreamingModule):
    """``PropagatedMemory(in_channels, dim=64, clip=8, memory=4)`` on ``[B, T, C]`` frames;
    ``heads`` and ``layers`` of the clip encoder."""

    in_ndim = 3

    def __init__(self, in_channels: int, dim: int = 64, clip: int = 8, memory: int = 4,
                 heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("dim", dim), ("clip", clip),
                        ("memory", memory), ("heads", heads), ("layers", layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.in_channels, self.dim, self.clip, self.memory = in_channels, dim, clip, memory
        self.fixed_in_channels, self.fixed_out_channels = in_channels, memory * dim
        self.proj = nn.Linear(in_channels, dim)
        self.first = nn.Parameter(torch.randn(memory, dim) * dim ** -0.5)  # m_0
        self.queries = nn.Parameter(torch.randn(memory, dim) * dim ** -0.5)
        self.slots = nn.Parameter(torch.randn(2 * memory + clip, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    # -- static facts ------------------------------------------------------------------------
    @property
    def time_axis(self) -> int:
        return 1

    @property
    def delay(self) -> Fraction:
        return Fraction(self.clip - 1)

    @property
    def stride(self) -> Fraction:
        return Fraction(1, self.clip)

    @property
    def period(self) -> int:
        return self.clip

    @property
    def receptive_field(self) -> int:
        return self.clip  # plus the whole past, through the memory

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, dim={self.dim}, clip={self.clip}, " \
               f"memory={self.memory}"

    # -- the computation ---------------------------------------------------------------------
    def encode(self, mem: Tensor, frames: Tensor) -> Tensor:
        """One clip: the memory ``[B, M, D]`` it leaves, from the previous one and its
        ``[B, clip, C]`` frames."""
        q = self.queries.expand(frames.shape[0], -1, -1).to(frames.dtype)
        h = self.encoder(torch.cat([mem, self.proj(frames), q], 1) + self.slots.to(frames.dtype))
        return h[:, -self.memory:]

    def _clips(self, mem: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """Encode the whole clips of ``x`` in order; their memories ``[B, n, M * D]`` and the
        last memory."""
        outs = []
        for i in range(x.shape[1] // self.clip):
            mem = self.encode(mem, x[:, i * self.clip:(i + 1) * self.clip])
            outs.append(mem.flatten(1))
        if not outs:
            return x.new_zeros(x.shape[0], 0, self.memory * self.dim), mem
        return torch.stack(outs, 1), mem

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(f"expected frames [B, T, {self.in_channels}], got "
                             f"{tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self._clips(self.first.expand(x.shape[0], -1, -1).to(x.dtype), x)[0]

    # -- streaming ---------------------------------------------------------------------------
    def state_spec(self, in_channels: int | None = None) -> Spec:
        return {"frames": tensor("B", self.clip - 1, self.in_channels, grows=1),
                "memory": tensor("B", self.memory, self.dim), "clips": clock(rebase=False)}

    def step(self, x: Tensor, state: dict) -> tuple[Tensor, dict]:
        self._check(x)
        mem = state["memory"] if state["clips"] else \
            self.first.expand(x.shape[0], -1, -1).to(x.dtype)
        pending = torch.cat([state["frames"], x], 1)
        y, mem = self._clips(mem, pending)
        n = y.shape[1]
        keep = pending[:, n * self.clip:].clone()
        return y, {"frames": keep, "memory": mem if n or state["clips"] else state["memory"],
                   "clips": state["clips"] + n}

    def reset_rows(self, state: dict, mask: Tensor, start: int) -> dict:
        raise ValueError("PropagatedMemory cannot restart single rows of a batch (each row's "
                         "memory follows its own clips): open a new stream for the new input")


def select(memories: Tensor, question: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Adaptive memory selection: of ``memories`` ``[B, N, M * D]`` (``PropagatedMemory``'s
    outputs), the ``k`` whose mean token is most similar (cosine) to ``question`` ``[B, D]``;
    returns their clip indices ``[B, k]`` in time order and the memories ``[B, k, M, D]``."""
    b, n, md = memories.shape
    d = question.shape[-1]
    if question.ndim != 2 or question.shape[0] != b or md % d:
        raise ValueError(f"expected question [{b}, D] with D dividing {md}, got "
                         f"{tuple(question.shape)}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] (the clips encoded so far), got {k}")
    tokens = memories.view(b, n, md // d, d)
    score = F.cosine_similarity(tokens.mean(2), question[:, None], dim=-1)
    idx = score.topk(k, dim=1).indices.sort(dim=1).values
    return idx, tokens.gather(1, idx[:, :, None, None].expand(-1, -1, *tokens.shape[2:]))


__all__ = ["PropagatedMemory", "select"]
