"""Aaren (Feng et al., "Attention as an RNN"): attention with a learned query, as a prefix scan.

With a fixed learned query ``q``, output ``t`` is softmax attention over the prefix ``0..t``:

    o_t = sum_{i<=t} exp(s_i) v_i / sum_{i<=t} exp(s_i),    s_i = q . k_i / sqrt(d).

It is carried by the triple ``(m, u, w)`` = (running max of ``s``, ``sum exp(s_i - m)``,
``sum exp(s_i - m) v_i``), which combines associatively and stays finite for any scores:

    (m_a, u_a, w_a) + (m_b, u_b, w_b)
        = (m, u_a e^(m_a - m) + u_b e^(m_b - m), w_a e^(m_a - m) + w_b e^(m_b - m)),
    with m = max(m_a, m_b).

Training runs a parallel (Hillis-Steele) prefix scan over the whole sequence; streaming keeps one
triple per head: O(1) state.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from streamwise.core.state import Spec, tensor
from streamwise.layers.recurrence import Recurrence

Triple = tuple[Tensor, Tensor, Tensor]


def combine(a: Triple, b: Triple) -> Triple:
    """Associative combination of two (max, denominator, numerator) summaries (a before b)."""
    m = torch.maximum(a[0], b[0])
    ea, eb = torch.exp(a[0] - m), torch.exp(b[0] - m)
    return m, a[1] * ea + b[1] * eb, a[2] * ea.unsqueeze(-2) + b[2] * eb.unsqueeze(-2)


def prefix_scan(s: Tensor, v: Tensor) -> Triple:
    """Inclusive prefix scan of ``(s [..., T], 1, v [..., D, T])`` in log2(T) parallel steps."""
    m, u, w = s, torch.ones_like(s), v
    t, off = s.shape[-1], 1
    while off < t:
        prev = (m[..., :-off], u[..., :-off], w[..., :-off])
        cur = (m[..., off:], u[..., off:], w[..., off:])
        cm, cu, cw = combine(prev, cur)
        m = torch.cat([m[..., :off], cm], -1)
        u = torch.cat([u[..., :off], cu], -1)
        w = torch.cat([w[..., :off], cw], -1)
        off *= 2
    return m, u, w


class Aaren(Recurrence):
    """Attention over the whole prefix with learned queries, on ``[B, C, T]``.

    ``heads`` queries of ``head_dim`` each; output ``[B, out_dim or dim, T]``.
    """

    in_ndim = 3

    def __init__(
        self, dim: int, heads: int = 1, head_dim: int | None = None, out_dim: int | None = None
    ) -> None:
        super().__init__()
        hd = head_dim or dim // heads
        self.dim, self.heads, self.head_dim = dim, heads, hd
        self.out_dim = out_dim or dim
        self.fixed_in_channels, self.fixed_out_channels = dim, self.out_dim
        self.query = nn.Parameter(torch.randn(heads, hd) / math.sqrt(hd))
        self.key = nn.Linear(dim, heads * hd)
        self.value = nn.Linear(dim, heads * hd)
        self.out = nn.Linear(heads * hd, self.out_dim)



    @property
    def receptive_field(self) -> int:
        return 1  # plus the whole past, through the state

    def scores_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Scores ``[B, H, T]`` and values ``[B, H, D, T]`` of each frame."""
        b, _, t = x.shape
        xt = x.transpose(1, 2)
        k = self.key(xt).view(b, t, self.heads, self.head_dim)
        v = self.value(xt).view(b, t, self.heads, self.head_dim)
        s = torch.einsum("bthd,hd->bht", k, self.query) / math.sqrt(self.head_dim)
        return s, v.permute(0, 2, 3, 1)

    def _output(self, u: Tensor, w: Tensor) -> Tensor:
        o = w / u.unsqueeze(-2)  # [B, H, D, T]
        b, t = o.shape[0], o.shape[-1]
        o = o.reshape(b, self.heads * self.head_dim, t).transpose(1, 2)
        return self.out(o).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        s, v = self.scores_values(x)
        _, u, w = prefix_scan(s, v)
        return self._output(u, w)

    def _inner_spec(self, in_channels: int | None) -> Spec:
        # the prefix (running max, normaliser, weighted sum) of the past's scores and values
        return (tensor("B", self.heads, 1, fill=-math.inf), tensor("B", self.heads, 1),
                tensor("B", self.heads, self.head_dim, 1))

    def _advance(self, x: Tensor, prefix: Triple, t: int) -> tuple[Tensor, Triple]:
        s, v = self.scores_values(x)
        m, u, w = combine(prefix, prefix_scan(s, v))  # the past before this chunk
        return self._output(u, w), (m[..., -1:], u[..., -1:], w[..., -1:])

    def _restart(self, prefix: Triple, rows: Tensor, t: int) -> Triple:
        r = rows.view(-1, 1, 1)
        return (prefix[0].masked_fill(r, -math.inf), prefix[1].masked_fill(r, 0.0),
                prefix[2].masked_fill(r.unsqueeze(-1), 0.0))
