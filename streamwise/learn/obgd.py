"""Overshooting-bounded gradient descent (ObGD) with eligibility traces, and its adaptive variant.

From "Streaming Deep Reinforcement Learning Finally Works" (Elsayed, Vasan, Mahmood, 2024): learn
from each sample once, with no replay buffer and no batch.  The traces follow
``z <- gamma * lambda * z + grad``; an update ``w <- w + alpha_eff * delta * z`` uses the step size

    alpha_eff = alpha / max(1, alpha * kappa * max(|delta|, 1) * ||z||_1),

which bounds how far one sample can move the prediction (no overshooting), so a large TD error or a
long trace cannot blow the network up.  The adaptive variant first normalises the traces by a
running second moment of ``delta * z``.  Written from the paper's update rules.

Usage, once per sample: ``loss``-free: compute the prediction, ``backward()`` it (the gradient of
the *prediction*, not of a loss), then ``opt.step(delta, reset=episode_ended)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class ObGD(torch.optim.Optimizer):
    """ObGD: ``step(delta)`` after ``prediction.backward()``; ``reset=True`` clears the traces."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1.0,
        gamma: float = 0.99,
        lamda: float = 0.8,
        kappa: float = 2.0,
    ) -> None:
        if lr <= 0 or not 0 <= gamma <= 1 or not 0 <= lamda <= 1 or kappa <= 0:
            raise ValueError(f"ObGD needs lr > 0, gamma and lamda in [0, 1], kappa > 0; got "
                             f"lr={lr}, gamma={gamma}, lamda={lamda}, kappa={kappa}")
        super().__init__(params, {"lr": lr, "gamma": gamma, "lamda": lamda, "kappa": kappa})

    def _decay_and_accumulate(self, group: dict[str, Any]) -> float:
        """``z <- gamma lambda z + grad`` for every parameter; returns ``||z||_1``."""
        norm = 0.0
        for p in group["params"]:
            st = self.state[p]
            if "trace" not in st:
                st["trace"] = torch.zeros_like(p)
            z = st["trace"]
            z.mul_(group["gamma"] * group["lamda"])
            if p.grad is not None:
                z.add_(p.grad)
            norm += float(z.abs().sum())
        return norm

    @torch.no_grad()
    def step(self, delta: float | Tensor, reset: bool = False) -> float:  # type: ignore[override]
        """One update with TD error ``delta``; returns the effective step size used."""
        d = float(delta)
        used = 0.0
        # ||z||_1 over every parameter: one sample's step is bounded for the whole network
        z_norm = sum(self._decay_and_accumulate(group) for group in self.param_groups)
        for group in self.param_groups:
            bound = group["lr"] * group["kappa"] * max(abs(d), 1.0) * z_norm
            used = group["lr"] / max(bound, 1.0)
            for p in group["params"]:
                p.add_(self.state[p]["trace"], alpha=used * d)
                if reset:
                    self.state[p]["trace"].zero_()
        return used

    def reset_traces(self) -> None:
        """Zero every trace (an episode ended, or an exploratory action cut the return)."""
        for group in self.param_groups:
            for p in group["params"]:
                if "trace" in self.state[p]:
                    self.state[p]["trace"].zero_()


class AdaptiveObGD(ObGD):
    """ObGD on traces normalised by a running second moment of ``delta * z`` (Adam-like)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1.0,
        gamma: float = 0.99,
        lamda: float = 0.8,
        kappa: float = 2.0,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr, gamma, lamda, kappa)
        for group in self.param_groups:
            group.setdefault("beta2", beta2)
            group.setdefault("eps", eps)

    @torch.no_grad()
    def step(self, delta: float | Tensor, reset: bool = False) -> float:  # type: ignore[override]
        d = float(delta)
        used = 0.0
        norm, directions = 0.0, []
        for group in self.param_groups:  # normalised traces, and their norm over every group
            self._decay_and_accumulate(group)
            beta2, eps = group["beta2"], group["eps"]
            for p in group["params"]:
                st = self.state[p]
                st["t"] = st.get("t", 0) + 1
                if "v" not in st:
                    st["v"] = torch.zeros_like(p)
                st["v"].mul_(beta2).addcmul_(st["trace"], st["trace"], value=(1 - beta2) * d * d)
                v_hat = st["v"] / (1 - beta2 ** st["t"])
                direction = st["trace"] / (v_hat.sqrt() + eps)
                norm += float(direction.abs().sum())
                directions.append(direction)
        k = 0
        for group in self.param_groups:
            bound = group["lr"] * group["kappa"] * max(abs(d), 1.0) * norm
            used = group["lr"] / max(bound, 1.0)
            group_dirs = directions[k : k + len(group["params"])]
            k += len(group["params"])
            for p, direction in zip(group["params"], group_dirs):
                p.add_(direction, alpha=used * d)
                if reset:
                    self.state[p]["trace"].zero_()
        return used
