"""Legendre Memory Unit (Voelker et al. 2019), in the parallel form used by LMUFormer.

The memory ``m`` (``order`` Legendre coefficients per memory channel) follows the linear system
``theta * dm/dt = A m + B u`` with

    A[i, j] = (2i + 1) * (-1 if i < j else (-1) ** (i - j + 1)),    B[i] = (2i + 1) * (-1) ** i,

discretised by zero-order hold with a step of one frame: ``m_t = Abar m_{t-1} + Bbar u_t``.
Because ``u`` depends on the input only (no hidden-state feedback), the memory is a causal
convolution of ``u`` with the impulse response ``H_k = Abar^k Bbar``: training runs it over a whole
sequence at once with an FFT, streaming runs the recurrence with O(1) state.  Written from the
equations above.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule
from streamwise.core.state import Spec, tensor
from streamwise.layers.containers import Residual, Sequential
from streamwise.layers.conv import Conv1d
from streamwise.layers.pointwise import GELU, BatchNorm1d
from streamwise.layers.recurrence import Recurrence


def legendre_system(order: int, theta: float) -> tuple[Tensor, Tensor]:
    """``(Abar, Bbar)`` of the LMU memory, zero-order hold with dt = 1, in float64."""
    i = torch.arange(order, dtype=torch.float64)
    ii, jj = i[:, None], i[None, :]
    sign = torch.where(ii < jj, -1.0, (-1.0) ** (ii - jj + 1))
    a = (2 * ii + 1) * sign
    b = ((2 * i + 1) * (-1.0) ** i)[:, None]
    aug = torch.zeros(order + 1, order + 1, dtype=torch.float64)
    aug[:order, :order] = a / theta
    aug[:order, order:] = b / theta
    e = torch.linalg.matrix_exp(aug)  # [[Abar, Bbar], [0, 1]]
    return e[:order, :order], e[:order, order]


class LMU(Recurrence):
    """LMU layer on ``[B, C, T]``: ``u = W_u x``, memory of ``u``, ``h = f(W_x x + W_m m)``.

    ``memory_channels`` independent memories of ``order`` coefficients each cover a sliding
    window of about ``theta`` frames.  Output ``[B, hidden_size, T]``.
    """

    in_ndim = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        order: int = 64,
        theta: float = 100.0,
        memory_channels: int = 1,
        activation: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.fixed_in_channels, self.fixed_out_channels = input_size, hidden_size
        self.order, self.theta, self.memory_channels = order, float(theta), memory_channels
        self.encoder = nn.Linear(input_size, memory_channels)
        self.hidden = nn.Linear(input_size + memory_channels * order, hidden_size)
        self.activation = activation if activation is not None else nn.Tanh()
        abar, bbar = legendre_system(order, self.theta)
        self.register_buffer("abar", abar, persistent=False)
        self.register_buffer("bbar", bbar, persistent=False)
        self._impulse_cache: Tensor | None = None
        self._impulse_key: tuple[Any, ...] | None = None  # the (Abar, dtype, device) it used

    abar: Tensor
    bbar: Tensor



    @property
    def receptive_field(self) -> int:
        return int(self.theta)  # the window the memory represents (the state holds all history)

    # -- offline: FFT convolution with the impulse response ------------------------------------
    def impulse_response(self, length: int, dtype: torch.dtype) -> Tensor:
        """``H[k] = Abar^k Bbar`` for k < length, ``[order, length]``, computed in float64."""
        cache = self._impulse_cache
        key = (self.abar.data_ptr(), self.abar.dtype, self.abar.device)
        if cache is None or cache.shape[1] < length or key != self._impulse_key:
            self._impulse_key = key
            n = max(length, 2 * (cache.shape[1] if cache is not None else 0))
            cols, h = [], self.bbar.to(torch.float64)
            a = self.abar.to(torch.float64)
            for _ in range(n):
                cols.append(h)
                h = a @ h
            cache = torch.stack(cols, 1)
            self._impulse_cache = cache
        return cache[:, :length].to(dtype)

    def memory(self, u: Tensor) -> Tensor:
        """Memory for every frame of ``u [B, channels, T]`` at once: ``[B, channels, order, T]``."""
        t = u.shape[-1]
        h = self.impulse_response(t, torch.float64)
        n = 2 * t
        spec = torch.fft.rfft(u.to(torch.float64), n=n)[:, :, None, :] * torch.fft.rfft(h, n=n)
        return torch.fft.irfft(spec, n=n)[..., :t].to(u.dtype)

    def _encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def _readout(self, x: Tensor, m: Tensor) -> Tensor:
        b, t = x.shape[0], x.shape[-1]
        feats = torch.cat([x, m.reshape(b, -1, t)], 1).transpose(1, 2)
        return self.activation(self.hidden(feats)).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self._readout(x, self.memory(self._encode(x)))

    # -- streaming: the recurrence ----------------------------------------------------------
    def _inner_spec(self, in_channels: int | None) -> Spec:
        return tensor("B", self.memory_channels, self.order)  # the Legendre memory m_t

    def _advance(self, x: Tensor, m: Tensor, t: int) -> tuple[Tensor, Tensor]:
        u = self._encode(x)
        a, b = self.abar.to(x.dtype), self.bbar.to(x.dtype)
        ms = []
        for i in range(x.shape[-1]):  # m_t = Abar m_{t-1} + Bbar u_t
            m = m @ a.T + u[:, :, i : i + 1] * b
            ms.append(m)
        return self._readout(x, torch.stack(ms, -1)), m

    def _restart(self, m: Tensor, rows: Tensor, t: int) -> Tensor:
        return m.masked_fill(rows.view(-1, 1, 1), 0.0)


def lmu_former_block(
    in_channels: int, dim: int, order: int = 32, theta: float = 64.0, patch: int = 4
) -> StreamingModule:
    """LMUFormer-style block: causal conv patch embedding, LMU token mixer, channel-mixer MLP."""
    return Sequential(
        Conv1d(in_channels, dim, patch, stride=patch, padding="valid"),  # patch embedding
        BatchNorm1d(dim),
        Residual(LMU(dim, dim, order=order, theta=theta, memory_channels=1)),
        Residual(Sequential(Conv1d(dim, 2 * dim, 1), GELU(), Conv1d(2 * dim, dim, 1))),
    )

