"""Leaky integrate-and-fire neurons as a streaming layer, and a local learning rule for them.

``LIF``: ``v_t = beta * v_{t-1} + W x_t + b - threshold * s_{t-1}`` (reset by subtraction),
``s_t = [v_t > threshold]``.  The spike is a step function; training uses a surrogate gradient
(the derivative of a fast sigmoid, ``1 / (1 + slope * |v - threshold|)^2``).  The membrane
potential and last spikes are the stream state.

``PrototypeReadout`` learns on the device, without backprop: a class is the normalised mean spike
rate of its examples, so a new class is added from a few examples in one pass (the on-chip
learning setting of the neuromorphic seed paper), and ``update`` moves a prototype towards a new
example (a local, Hebbian-style rule).
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamwise.core.state import Spec, tensor
from streamwise.layers.recurrence import Recurrence


class _Spike(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid derivative backward."""

    @staticmethod
    def forward(ctx: Any, v: Tensor, slope: float) -> Tensor:  # noqa: D102
        ctx.save_for_backward(v)
        ctx.slope = slope
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        (v,) = ctx.saved_tensors
        return grad / (1 + ctx.slope * v.abs()) ** 2, None


def spike(v: Tensor, slope: float = 5.0) -> Tensor:
    """1 where ``v > 0``, with a surrogate gradient for training."""
    return cast(Tensor, _Spike.apply(v, slope))


class LIF(Recurrence):
    """A layer of LIF neurons on ``[B, C, T]``: input current ``W x + b``, spikes out."""

    in_ndim = 3

    def __init__(
        self, in_features: int, out_features: int, beta: float = 0.9, threshold: float = 1.0,
        slope: float = 5.0,
    ) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.in_features, self.out_features = in_features, out_features
        self.fixed_in_channels, self.fixed_out_channels = in_features, out_features
        self.beta, self.threshold, self.slope = beta, threshold, slope



    def _run(self, x: Tensor, v: Tensor, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        current = F.linear(x.transpose(1, 2), self.fc.weight, self.fc.bias)  # [B, T, C]
        spikes = []
        for t in range(x.shape[-1]):
            v = self.beta * v + current[:, t] - self.threshold * s
            s = spike(v - self.threshold, self.slope)
            spikes.append(s)
        out = torch.stack(spikes, -1) if spikes else x.new_empty(x.shape[0], self.out_features, 0)
        return out, v, s

    def forward(self, x: Tensor) -> Tensor:
        return self._advance(x, self._fresh(x.shape[0], x.device, x.dtype), 0)[0]

    def _inner_spec(self, in_channels: int | None) -> Spec:
        # membrane potentials and the last spikes
        return tensor("B", self.out_features), tensor("B", self.out_features)

    def _advance(self, x: Tensor, vs: tuple[Tensor, Tensor], t: int
                 ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        out, v, s = self._run(x, *vs)
        return out, (v, s)

    def _restart(self, vs: tuple[Tensor, Tensor], rows: Tensor, t: int
                 ) -> tuple[Tensor, Tensor]:
        r = rows.view(-1, 1)
        return vs[0].masked_fill(r, 0.0), vs[1].masked_fill(r, 0.0)


class PrototypeReadout(nn.Module):
    """Classify spike-rate vectors by cosine similarity to per-class prototypes (no backprop)."""

    prototypes: Tensor

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("prototypes", torch.zeros(0, features))

    @property
    def num_classes(self) -> int:
        return int(self.prototypes.shape[0])

    def add_class(self, rates: Tensor) -> int:
        """Add a class from a few examples' rate vectors ``[N, features]``; return its index."""
        if rates.dim() != 2 or rates.shape[1] != self.features or rates.shape[0] == 0:
            raise ValueError(f"add_class needs rates [N >= 1, {self.features}], got "
                             f"{tuple(rates.shape)}")
        proto = F.normalize(rates.float().mean(0), dim=0, eps=1e-8)
        self.prototypes = torch.cat([self.prototypes, proto[None]], 0)
        return self.num_classes - 1

    def update(self, rate: Tensor, label: int, lr: float = 0.1) -> None:
        """Local rule: move class ``label``'s prototype towards ``rate`` and renormalise."""
        if not 0 <= label < self.num_classes:
            raise ValueError(f"unknown class {label}; have {self.num_classes}")
        old = self.prototypes[label]
        p = old + lr * (F.normalize(rate.float(), dim=0) - old)
        self.prototypes[label] = F.normalize(p, dim=0, eps=1e-8)

    def forward(self, rates: Tensor) -> Tensor:
        """Similarity ``[N, classes]`` of rate vectors ``[N, features]`` to every prototype."""
        return F.normalize(rates.float(), dim=-1, eps=1e-8) @ self.prototypes.T
