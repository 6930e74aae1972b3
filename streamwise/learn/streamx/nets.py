"""Networks for stream-x agents: sparse initialisation, LayerNorm without parameters, LeakyReLU.

Sparse init (from the stream-x paper): LeCun-uniform weights with a fixed fraction of each unit's
incoming weights set to zero, biases zero.  Sparse, normalised features keep the per-sample
updates of streaming learning from interfering with each other.
"""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def sparse_init(layer: nn.Linear, sparsity: float = 0.9, generator: torch.Generator | None = None
                ) -> None:
    """LeCun-uniform weights, then zero ``sparsity`` of each output unit's inputs; zero bias."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    fan_out, fan_in = layer.weight.shape
    bound = math.sqrt(1.0 / fan_in) * math.sqrt(3.0)
    layer.weight.uniform_(-bound, bound, generator=generator)
    n_zero = int(math.ceil(sparsity * fan_in))
    for row in range(fan_out):
        idx = torch.randperm(fan_in, generator=generator)[:n_zero]
        layer.weight[row, idx] = 0.0
    if layer.bias is not None:
        layer.bias.zero_()


def mlp(inputs: int, outputs: int, hidden: tuple[int, ...] = (128, 128), seed: int = 0,
        sparsity: float = 0.9) -> nn.Sequential:
    """Linear -> LayerNorm (no affine) -> LeakyReLU per hidden layer, sparse-initialised."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        lin = nn.Linear(width, h)
        sparse_init(lin, sparsity, gen)
        layers += [lin, nn.LayerNorm(h, elementwise_affine=False), nn.LeakyReLU()]
        width = h
    out = nn.Linear(width, outputs)
    sparse_init(out, sparsity, gen)
    layers.append(out)
    return nn.Sequential(*layers)
