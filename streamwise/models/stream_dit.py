"""A small StreamDiT: an adaLN DiT over a moving buffer of frame chunks, with StreamingT2V's
short-term and long-term memories as extra tokens it attends to.

``StreamDiT(channels, chunk)`` predicts the flow-matching velocity of a buffer ``x`` ``[B, T, C]``
(``T`` a multiple of ``chunk``, the buffer's chunks oldest first) at per-frame flow times ``t``
``[T]`` (0 = noise, 1 = data):

- every token is conditioned on its own time by adaLN (DiT's scale, shift and a zero-initialised
  gate around attention and the MLP, computed from an embedding of ``t``): the buffer's chunks
  are at different noise levels, so the time embedding varies along the sequence;
- window attention over chunks: a frame of buffer chunk ``i`` sees buffer chunks ``i - window
  .. i + window`` (its cleaner and noisier neighbours) and every memory token;
- memory tokens (``AnchorMemory.read()``: frames, kind 0 = anchor / 1 = recent, stream frame) are
  clean frames at ``t = 1`` with a kind embedding; they see only each other, so their features
  do not depend on the noisy buffer (a runtime could cache them until the memory changes).

``flow_matching_loss`` trains it on clean buffers noised at staggered levels (StreamDiT's
moving-buffer training, with a share of independent levels: its mixed partitioning), and
``velocity(model)`` is the function ``core/moving_buffer.MovingBuffer`` calls.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

Memory = tuple[Tensor, Tensor, Tensor] | None


def time_features(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of flow times ``t`` (any shape) -> ``[..., dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    arg = 1000.0 * t[..., None].float() * freqs
    return torch.cat([arg.sin(), arg.cos()], -1).to(t.dtype if t.is_floating_point()
                                                     else torch.float32)


def zero_linear(n_in: int, n_out: int) -> nn.Linear:
    """A linear layer that starts at zero (adaLN-Zero: every block starts as the identity)."""
    lin = nn.Linear(n_in, n_out)
    nn.init.zeros_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class Block(nn.Module):
    """adaLN-Zero transformer block: ``h + g * f(norm(h) * (1 + scale) + shift)`` twice."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))
        self.ada = nn.Sequential(nn.SiLU(), zero_linear(dim, 6 * dim))

    def forward(self, h: Tensor, c: Tensor, mask: Tensor) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, -1)
        b, n, d = h.shape
        a = self.norm1(h) * (1 + sc1) + sh1
        q, k, v = self.qkv(a).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = h + g1 * self.out(o.transpose(1, 2).reshape(b, n, d))
        return h + g2 * self.mlp(self.norm2(h) * (1 + sc2) + sh2)


class StreamDiT(nn.Module):
    """Velocity model of a moving buffer of ``chunk``-frame chunks of ``channels`` features."""

    def __init__(self, channels: int, chunk: int, dim: int = 64, heads: int = 4,
                 layers: int = 3, window: int = 1, max_chunks: int = 16, mlp: int = 2) -> None:
        super().__init__()
        for name, v, low in (("channels", channels, 1), ("chunk", chunk, 1), ("dim", dim, 2),
                             ("heads", heads, 1), ("layers", layers, 1), ("window", window, 0),
                             ("max_chunks", max_chunks, 1), ("mlp", mlp, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if dim % heads or dim % 2:
            raise ValueError(f"dim ({dim}) must be even and a multiple of heads ({heads})")
        self.channels, self.chunk, self.dim = channels, chunk, dim
        self.window, self.max_chunks = window, max_chunks
        self.inp = nn.Linear(channels, dim)
        self.frame = nn.Embedding(chunk, dim)  # place within a chunk
        self.slot = nn.Embedding(max_chunks, dim)  # buffer chunk, oldest first
        self.kind = nn.Embedding(2, dim)  # memory: 0 anchor, 1 recent
        self.temb = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp) for _ in range(layers))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.ada = nn.Sequential(nn.SiLU(), zero_linear(dim, 2 * dim))
        self.head = zero_linear(dim, channels)

    def check(self, x: Tensor, t: Tensor) -> None:
        """Raise a ValueError naming what was expected."""
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[2] != self.channels:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected a buffer [B, T, {self.channels}], got {got}")
        n = x.shape[1]
        if n == 0 or n % self.chunk or n // self.chunk > self.max_chunks:
            raise ValueError(f"expected T a multiple of chunk {self.chunk} with 1 .. "
                             f"{self.max_chunks} chunks, got T = {n}")
        if t.shape not in ((n,), (x.shape[0], n)):
            raise ValueError(f"expected flow times t [{n}] or [{x.shape[0]}, {n}] (one per "
                             f"frame), got {tuple(t.shape)}")

    def mask(self, n_chunks: int, memory_kinds: int, device: Any) -> Tensor:
        """``[N, N]`` attention mask, memory tokens first then the buffer's frames."""
        chunk_of = torch.arange(n_chunks * self.chunk, device=device) // self.chunk
        near = (chunk_of[:, None] - chunk_of[None, :]).abs() <= self.window
        m = memory_kinds
        top = torch.cat([torch.ones(m, m, dtype=torch.bool, device=device),
                         torch.zeros(m, len(chunk_of), dtype=torch.bool, device=device)], 1)
        bottom = torch.cat([torch.ones(len(chunk_of), m, dtype=torch.bool, device=device),
                            near], 1)
        return torch.cat([top, bottom], 0)

    def forward(self, x: Tensor, t: Tensor, memory: Memory = None) -> Tensor:
        self.check(x, t)
        b, n, _ = x.shape
        dev = x.device
        idx = torch.arange(n, device=dev)
        h = self.inp(x) + self.frame(idx % self.chunk) + self.slot(idx // self.chunk)
        tt = t.expand(b, n) if t.dim() == 1 else t
        c = self.temb(time_features(tt.to(x.dtype), self.dim).to(x.dtype))
        m = 0
        if memory is not None:
            frames, kind, pos = memory
            if frames.dim() != 3 or frames.shape[0] != b or frames.shape[2] != self.channels:
                raise ValueError(f"expected memory frames [{b}, M, {self.channels}], got "
                                 f"{tuple(frames.shape)}")
            m = frames.shape[1]
            hm = self.inp(frames) + self.frame(pos.to(dev) % self.chunk) + self.kind(kind.to(dev))
            cm = self.temb(time_features(torch.ones(b, m, device=dev, dtype=x.dtype),
                                         self.dim).to(x.dtype)) + self.kind(kind.to(dev))
            h, c = torch.cat([hm, h], 1), torch.cat([cm, c], 1)
        mask = self.mask(n // self.chunk, m, dev)
        for blk in self.blocks:
            h = blk(h, c, mask)
        sh, sc = self.ada(c).chunk(2, -1)
        return self.head(self.norm(h) * (1 + sc) + sh)[:, m:]


def velocity(model: StreamDiT) -> Any:
    """``model`` as the ``velocity(x, t, context)`` a ``MovingBuffer`` calls (no gradients)."""
    @torch.no_grad()
    def v(x: Tensor, t: Tensor, context: Memory) -> Tensor:
        return model(x, t, context)
    return v


def staggered_times(batch: int, n_chunks: int, chunk: int, steps: int, mixed: float,
                    generator: torch.Generator | None = None) -> Tensor:
    """Per-frame training times ``[batch, n_chunks * chunk]``: chunk ``i`` (oldest first) of a
    buffer at level ``n - 1 - i`` of ``steps``, ``t = (level + u) / steps`` with one ``u ~ U[0,
    1)`` per buffer (the moving buffer between two calls); a share ``mixed`` of the buffers get
    independent times per chunk instead, sorted so the oldest is the cleanest."""
    u = torch.rand(batch, 1, generator=generator)
    level = torch.arange(n_chunks - 1, -1, -1, dtype=torch.float32)[None]
    t = ((level + u) / steps).clamp(max=1 - 1e-4)
    free = torch.rand(batch, n_chunks, generator=generator).sort(1, descending=True).values
    pick = torch.rand(batch, 1, generator=generator) < mixed
    t = torch.where(pick, free, t)
    return t.repeat_interleave(chunk, 1)


def flow_matching_loss(model: StreamDiT, clean: Tensor, t: Tensor, memory: Memory = None,
                       generator: torch.Generator | None = None) -> Tensor:
    """MSE of the predicted velocity against ``clean - noise`` at ``x_t = (1 - t) z + t x``."""
    z = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
    tt = t[..., None].to(clean.dtype)
    return F.mse_loss(model((1 - tt) * z + tt * clean, t, memory), clean - z)
