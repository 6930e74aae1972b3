"""The Dual-Stream Transformer (Kerce & Fox): a causal token LM whose residual stream is split in
two, with attention heads that read and write their own channels.

Each of the two streams has ``dim = heads * head_dim`` channels, cut into one ``head_dim`` slice
per head.  The **token stream** ``x_t`` starts as the token embedding and is written only by
attention; the **context stream** ``x_e`` starts at zero and is written only by the feed-forward
blocks.  A layer is

    u   = [CLN(x_t)_h, CLN(x_e)_h]_h        # per head: its slice of both streams, normalised
    x_t = x_t + W_o attend(W_q u, W_k u, W_v u)
    v   = [CLN(x_t)_h, CLN(x_e)_h]_h
    x_e = x_e + FFN(v)

with ``CLN`` a channel-aware LayerNorm (each head's slice normalised on its own, so no statistic
crosses heads) and logits ``W_out [CLN(x_t), CLN(x_e)]``.  The head *mixing* is the structure of
``W_q, W_k, W_v, W_o`` (``HeadMix``), seen as a heads x heads grid of blocks:

- ``independent``: block-diagonal, head ``i`` reads and writes only slice ``i``;
- ``kronecker``: ``(M kron I) blockdiag(A_1..A_H)``, block ``(i, j) = M[i, j] A_j``: heads pass
  each other scalar multiples of their own maps (``M = I`` at init: independent);
- ``dense``: one full matrix (standard transformer behaviour).

The feed-forward blocks are dense in every mode (the paper's mixing is of attention heads); their
width is chosen so every variant has the parameter count of ``arch='standard'``, a pre-norm
transformer of width ``dim`` with a ``4 dim`` MLP (``match_parameters``).  Attention is
``StreamingAttention`` (RoPE, its KV cache bounded by ``cache``, e.g. ``Window(n)``), so ``step``
streams token ids exactly like ``forward`` for every chunking.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamwise.attention.attention import StreamingAttention
from streamwise.attention.cache.base import CachePolicy, Full
from streamwise.core import state as spec_tools
from streamwise.core.protocol import StreamingModule
from streamwise.core.state import Spec

if TYPE_CHECKING:
    from streamwise.core.stream import Stream

MIXINGS = ("independent", "kronecker", "dense")
ARCHS = ("standard", *MIXINGS)


class HeadMix(nn.Module):
    """A linear map ``heads * d_in -> heads * d_out`` whose weight has the mixing's structure."""

    def __init__(self, heads: int, d_in: int, d_out: int, mixing: str) -> None:
        super().__init__()
        if mixing not in MIXINGS:
            raise ValueError(f"mixing must be one of {MIXINGS}, got {mixing!r}")
        self.heads, self.d_in, self.d_out, self.mixing = heads, d_in, d_out, mixing
        if mixing == "dense":
            self.full = nn.Parameter(torch.empty(heads * d_out, heads * d_in))
            nn.init.normal_(self.full, std=(heads * d_in) ** -0.5)
        else:
            self.blocks = nn.Parameter(torch.randn(heads, d_out, d_in) * d_in ** -0.5)
        if mixing == "kronecker":
            self.mix = nn.Parameter(torch.eye(heads))

    @property
    def weight(self) -> Tensor:
        """The ``[heads * d_out, heads * d_in]`` matrix, block ``(i, j)`` head ``j`` -> ``i``."""
        if self.mixing == "dense":
            return self.full
        h, o, i = self.heads, self.d_out, self.d_in
        if self.mixing == "independent":
            return torch.block_diag(*self.blocks)
        return torch.einsum("ij,joc->iojc", self.mix, self.blocks).reshape(h * o, h * i)

    def forward(self, x: Tensor) -> Tensor:
        """``x @ weight.T``; per head for the structured mixings (no zero blocks multiplied)."""
        if self.mixing == "dense":
            return F.linear(x, self.full)
        y = torch.einsum("...hc,hoc->...ho", x.unflatten(-1, (self.heads, self.d_in)),
                         self.blocks)
        if self.mixing == "kronecker":
            y = torch.einsum("ij,...jo->...io", self.mix, y)
        return y.flatten(-2)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, d_in={self.d_in}, d_out={self.d_out}, mixing={self.mixing!r}"


class HeadNorm(nn.Module):
    """Channel-aware LayerNorm: each head's ``head_dim`` slice normalised on its own."""

    def __init__(self, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.weight = nn.Parameter(torch.ones(heads, head_dim))
        self.bias = nn.Parameter(torch.zeros(heads, head_dim))

    def forward(self, x: Tensor) -> Tensor:
        """``[..., heads * head_dim]`` -> ``[..., heads, head_dim]``."""
        x = x.unflatten(-1, (self.heads, self.head_dim))
        return F.layer_norm(x, (self.head_dim,)) * self.weight + self.bias


def _pair(nt: HeadNorm, ne: HeadNorm, xt: Tensor, xe: Tensor) -> Tensor:
    """Per head, its slice of both streams side by side: ``[..., heads * 2 head_dim]``."""
    return torch.cat([nt(xt), ne(xe)], -1).flatten(-2)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class DualBlock(nn.Module):
    """One dual-stream layer: attention writes the token stream, the FFN the context stream."""

    def __init__(self, heads: int, head_dim: int, mixing: str, ffn: int,
                 cache: CachePolicy) -> None:
        super().__init__()
        dim = heads * head_dim
        # attention over both streams' slices (2 head_dim per head) writing head_dim per head
        self.attn = StreamingAttention(2 * dim, heads, head_dim=head_dim, cache=cache)
        for name in ("q_proj", "k_proj", "v_proj"):
            self.attn.add_module(name, HeadMix(heads, 2 * head_dim, head_dim, mixing))
        self.attn.add_module("out_proj", HeadMix(heads, head_dim, head_dim, mixing))
        self.attn.fixed_out_channels = dim
        self.nt1, self.ne1 = HeadNorm(heads, head_dim), HeadNorm(heads, head_dim)
        self.nt2, self.ne2 = HeadNorm(heads, head_dim), HeadNorm(heads, head_dim)
        self.ffn = _mlp(2 * dim, ffn, dim)

    def attn_input(self, xt: Tensor, xe: Tensor) -> Tensor:
        """What attention reads: each head's slice of both streams, normalised per head."""
        return _pair(self.nt1, self.ne1, xt, xe)

    def token_update(self, xt: Tensor, xe: Tensor) -> Tensor:
        """What attention adds to the token stream (offline, the whole sequence)."""
        return self.attn(self.attn_input(xt, xe))

    def context_update(self, xt: Tensor, xe: Tensor) -> Tensor:
        return self.ffn(_pair(self.nt2, self.ne2, xt, xe))


class StandardBlock(nn.Module):
    """A pre-norm transformer layer: ``x + attn(LN x)``, then ``x + MLP(LN x)``."""

    def __init__(self, dim: int, heads: int, ffn: int, cache: CachePolicy) -> None:
        super().__init__()
        self.attn = StreamingAttention(dim, heads, cache=cache)
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = _mlp(dim, ffn, dim)


class DualStreamLM(StreamingModule):
    """Token ids ``[B, T]`` (long) -> next-token logits ``[B, T, vocab]``, causal.

    ``arch``: 'independent' | 'kronecker' | 'dense' (dual-stream head mixing) or 'standard' (the
    baseline pre-norm transformer); ``dim`` channels per stream, ``heads`` of ``dim / heads``
    (even: RoPE); ``ffn`` the feed-forward width (None: the width that gives every arch the
    baseline's parameter count); ``cache`` the attention's KV policy (``Full()`` by default,
    ``Window(n)`` bounds it; it must answer each token on arrival, block 1).  The state is held
    in the weights' dtype whatever the ids' (``stream()`` takes long ids).
    """

    in_ndim = 2

    def __init__(self, vocab: int, dim: int = 64, heads: int = 4, layers: int = 2,
                 arch: str = "kronecker", ffn: int | None = None,
                 cache: CachePolicy | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        for name, v in (("vocab", vocab), ("dim", dim), ("heads", heads), ("layers", layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim ({dim}) must be heads ({heads}) x an even head_dim (RoPE)")
        cache = cache if cache is not None else Full()
        if not isinstance(cache, CachePolicy) or cache.block != 1:
            raise ValueError(f"cache must be a causal CachePolicy answering every token on "
                             f"arrival (block 1: Full, Window, Sinks, ...), got {cache!r}")
        if ffn is None:
            ffn = match_parameters(vocab, dim, heads, layers, arch)
        if ffn < 1:
            raise ValueError(f"ffn must be >= 1, got {ffn}")
        self.vocab, self.dim, self.heads, self.arch, self.ffn_width = vocab, dim, heads, arch, ffn
        hd = dim // heads
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(
            StandardBlock(dim, heads, ffn, copy.deepcopy(cache)) if arch == "standard"
            else DualBlock(heads, hd, arch, ffn, copy.deepcopy(cache)) for _ in range(layers))
        if arch == "standard":
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, vocab)
        else:
            self.nt, self.ne = HeadNorm(heads, hd), HeadNorm(heads, hd)
            self.head = nn.Linear(2 * dim, vocab)

    # -- metadata ------------------------------------------------------------------------------
    @property
    def time_axis(self) -> int:
        return 1

    @property
    def delay(self) -> Fraction:
        return Fraction(0)

    @property
    def receptive_field(self) -> int:
        return 1 + sum(b.attn.receptive_field - 1 for b in self._blocks())

    @property
    def exact(self) -> bool:
        return all(b.attn.exact for b in self._blocks())

    def _blocks(self) -> list[Any]:
        return list(self.blocks)

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, vocab={self.vocab}, dim={self.dim}, heads={self.heads}, " \
               f"ffn={self.ffn_width}"

    # -- the layers, shared by forward and step ------------------------------------------------
    def _check_ids(self, x: Any, batch: int | None = None) -> None:
        want = f"[{batch if batch is not None else 'B'}, T]"
        if not isinstance(x, Tensor) or x.dim() != 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected token ids {want}, got {got}")
        if x.dtype not in (torch.long, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"expected integer token ids {want}, got dtype {x.dtype}")
        if batch is not None and x.shape[0] != batch:
            raise ValueError(f"batch mismatch: the stream has {batch} rows, got ids "
                             f"{tuple(x.shape)} (expected {want})")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab):
            raise ValueError(f"token ids must lie in [0, {self.vocab}), got "
                             f"[{int(x.min())}, {int(x.max())}]")

    def _run(self, x: Tensor, attend: Any) -> Tensor:
        """The network on ids ``x``; ``attend(i, attention, input)`` runs layer ``i``'s
        attention (offline: ``forward``; streaming: ``step`` with that layer's state)."""
        h = self.embed(x.long())
        if self.arch == "standard":
            for i, b in enumerate(self._blocks()):
                h = h + attend(i, b.attn, b.n1(h))
                h = h + b.ffn(b.n2(h))
            return self.head(self.norm(h))
        xt, xe = h, torch.zeros_like(h)
        for i, b in enumerate(self._blocks()):
            xt = xt + attend(i, b.attn, b.attn_input(xt, xe))
            xe = xe + b.context_update(xt, xe)
        return self.head(_pair(self.nt, self.ne, xt, xe))

    def forward(self, x: Tensor) -> Tensor:
        self._check_ids(x)
        return self._run(x, lambda i, attn, u: attn(u))

    # -- streaming -----------------------------------------------------------------------------
    def _float_dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    def state_spec(self, in_channels: int | None = None) -> Spec:
        """Each layer's attention state, its float leaves in the weights' dtype."""
        dt = self._float_dtype()

        def pin(leaf: spec_tools.Leaf) -> spec_tools.Leaf:
            return replace(leaf, dtype=dt) if leaf.kind == "tensor" and leaf.dtype is None \
                else leaf
        return {"layers": [spec_tools.spec_map(pin, b.attn.state_spec()) for b in self._blocks()]}

    def stream(self, batch_size: int = 1, *, device: torch.device | str | None = None,
               dtype: torch.dtype | None = torch.long, check_finite: bool = False) -> Stream:
        """A stream that takes token ids (``dtype`` of the ids, long by default)."""
        return super().stream(batch_size, device=device, dtype=dtype, check_finite=check_finite)

    def step(self, x: Tensor, state: dict) -> tuple[Tensor, dict]:
        layers = state["layers"]
        self._check_ids(x, layers[0]["buf"].shape[0])
        if not x.shape[1]:  # nothing arrives, nothing changes
            return x.new_zeros(x.shape[0], 0, self.vocab, dtype=self._float_dtype()), state
        new = list(layers)

        def attend(i: int, attn: StreamingAttention, u: Tensor) -> Tensor:
            y, new[i] = attn.step(u, layers[i])
            return y
        return self._run(x, attend), {"layers": new}

    def flush(self, state: dict) -> tuple[Tensor, dict]:
        b = state["layers"][0]["buf"]
        return b.new_zeros(b.shape[0], 0, self.vocab), state

    def reset_rows(self, state: dict, mask: Tensor, start: int) -> dict:
        raise ValueError("DualStreamLM cannot restart single rows of a batch (each row's KV "
                         "cache holds its own positions): open a new stream for the new input")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _mix_parameters(heads: int, d_in: int, d_out: int, mixing: str) -> int:
    blocks = heads * d_out * d_in
    return {"independent": blocks, "kronecker": blocks + heads * heads,
            "dense": heads * blocks}[mixing]


def match_parameters(vocab: int, dim: int, heads: int, layers: int, arch: str) -> int:
    """The feed-forward width that gives ``arch`` the parameter count of the standard baseline
    (``4 dim`` MLP) at ``vocab, dim, heads, layers``, to the nearest unit."""
    if arch == "standard":
        return 4 * dim
    hd = dim // heads
    # standard layer: q, k, v, o; MLP dim -> 4 dim -> dim with biases; two LayerNorms
    std_layer = 4 * dim * dim + 8 * dim * dim + 4 * dim + dim + 4 * dim
    std = vocab * dim + layers * std_layer + 2 * dim + dim * vocab + vocab
    attn = (3 * _mix_parameters(heads, 2 * hd, hd, arch)
            + _mix_parameters(heads, hd, hd, arch))
    fixed_layer = attn + 4 * 2 * dim + dim  # four channel-aware norms; the FFN's output bias
    dual_fixed = vocab * dim + layers * fixed_layer + 2 * 2 * dim + 2 * dim * vocab + vocab
    per_unit = layers * (2 * dim + 1 + dim)  # one hidden unit: its input row, bias, output column
    return max(1, round((std - dual_fixed) / per_unit))
