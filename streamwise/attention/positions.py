"""Positions for attention: rotary (RoPE), ALiBi, or none, from explicit position numbers.

Every cached entry keeps the absolute frame at which it arrived; what attention *sees* is chosen by
the cache policy (``absolute``, ``within_cache`` or per-segment ``group`` positions).  These helpers
take the presented positions (or the relative distance query - key) and nothing else, so the same
functions serve the offline ``forward`` and the streamed ``step``.

RoPE uses the "rotate half" convention of Llama and GPT-NeoX: dimension ``i`` pairs with
``i + d/2`` and turns by ``pos * base**(-2i/d)``.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

POSITION_KINDS = ("rope", "alibi", "none")


def rope_frequencies(head_dim: int, base: float = 10000.0, *, device=None, dtype=None) -> Tensor:
    """Angular frequency of each rotated pair, ``[head_dim // 2]``."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    i = torch.arange(0, head_dim, 2, device=device, dtype=torch.float64)
    return (base ** (-i / head_dim)).to(dtype or torch.get_default_dtype())


def rotate_half(x: Tensor) -> Tensor:
    """``[-x2, x1]`` for ``x = [x1, x2]`` split in halves along the last axis."""
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def apply_rope(x: Tensor, pos: Tensor, freqs: Tensor) -> Tensor:
    """Rotate ``x [..., T, D]`` by positions ``pos`` (broadcastable to ``[..., T]``)."""
    ang = pos.to(freqs.dtype)[..., None] * freqs  # [..., T, D/2]
    ang = torch.cat([ang, ang], -1)
    # cos/sin at the frequencies' precision (float64 from the modules), then cast: an angle
    # rounded to float32 at frame 1e5 would be off by ~1e-2 rad
    return x * ang.cos().to(x.dtype) + rotate_half(x) * ang.sin().to(x.dtype)


def rope_scores(q: Tensor, k: Tensor, dist: Tensor, freqs: Tensor) -> Tensor:
    """``q_i . R(dist_ij) k_j`` for an arbitrary distance matrix, without rotating per pair.

    ``q [B, H, Tq, D]``, ``k [B, H, N, D]``, ``dist [B, Tq, N]`` (query position minus key
    position as presented).  Writing each rotated pair as a complex number, the score is
    ``sum_f Re(q_f conj(k_f) e^{i w_f dist})``: two einsums and a cosine/sine per pair.
    """
    h = q.shape[-1] // 2
    q1, q2, k1, k2 = q[..., :h], q[..., h:], k[..., :h], k[..., h:]
    a = torch.einsum("bhqf,bhkf->bhqkf", q1, k1) + torch.einsum("bhqf,bhkf->bhqkf", q2, k2)
    c = torch.einsum("bhqf,bhkf->bhqkf", q1, k2) - torch.einsum("bhqf,bhkf->bhqkf", q2, k1)
    ang = dist.to(freqs.dtype)[:, None, :, :, None] * freqs  # [B, 1, Tq, N, F]
    return (a * ang.cos().to(q.dtype) + c * ang.sin().to(q.dtype)).sum(-1)


def alibi_slopes(heads: int, *, device=None, dtype=None) -> Tensor:
    """ALiBi's per-head slopes: a geometric sequence from 2^(-8/n) (Press et al.)."""
    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    p = 2 ** math.floor(math.log2(heads))
    s = power_of_two(p)
    if p < heads:  # the paper's rule for head counts that are not powers of two
        s += power_of_two(2 * p)[0::2][: heads - p]
    return torch.tensor(s, device=device, dtype=dtype or torch.get_default_dtype())


def check_kind(kind: str, name: str = "encoding") -> str:
    if kind not in POSITION_KINDS:
        raise ValueError(f"unknown {name} {kind!r}: expected one of {POSITION_KINDS}")
    return kind


def encoding_arg(encoding: str, positions: str | None, where: str) -> str:
    """The position encoding asked of ``where`` ('rope' | 'alibi' | 'none'), checked.

    ``positions=`` was its old name; it now means only a cache policy's position contract
    ('absolute' | 'within_cache' | 'group'), so the old keyword still works for one release
    with a ``DeprecationWarning``.
    """
    if positions is None:
        return check_kind(encoding)
    warnings.warn(f"{where}(positions=...) is renamed encoding=...; positions= now means only "
                  "a cache policy's position contract", DeprecationWarning, stacklevel=3)
    return check_kind(positions, "positions")
