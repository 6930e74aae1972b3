"""Rebuild a streamwise conv stack with cached_conv 2.5.0's layers and the same weights.

cached_conv (the RAVE streaming library) needs the cumulative delay of every layer's input passed
by hand at construction; this port threads it the way its own models do.  Its streaming output is
the offline output shifted right by ``cumulative_delay`` frames, and it only accepts chunks whose
length is a multiple of the model's total stride.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from streamwise.layers.containers import Parallel, Residual, Sequential
from streamwise.layers.conv import Conv1d
from streamwise.layers.conv_transpose import ConvTranspose1d
from streamwise.layers.pointwise import Identity, Pointwise


class _Sum(nn.Module):
    """AlignBranches followed by a sum: cached_conv's residual connection."""

    def __init__(self, align: Any) -> None:
        super().__init__()
        self.align = align
        self.cumulative_delay: int = int(align.cumulative_delay)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.align(x)
        return a + b


def _copy(dst: Any, src: Conv1d | ConvTranspose1d) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        if src.bias is not None:
            dst.bias.copy_(src.bias)


def port(module: nn.Module, cd: int = 0) -> tuple[nn.Module, int]:
    """cached_conv twin of ``module`` given the cumulative delay ``cd`` of its input."""
    import cached_conv as cc

    cc.use_cached_conv(True)
    if isinstance(module, Conv1d):
        m: Any = cc.Conv1d(
            module.in_channels, module.out_channels, module.kernel_size, stride=module.conv_stride,
            padding=module.padding, dilation=module.dilation, groups=module.groups,
            bias=module.bias is not None, cumulative_delay=cd,
        )
        _copy(m, module)
        return m, int(m.cumulative_delay)
    if isinstance(module, ConvTranspose1d):
        m = cc.ConvTranspose1d(
            module.in_channels, module.out_channels, module.kernel_size,
            stride=module.conv_stride, padding=module.padding,
            output_padding=module.output_padding, groups=module.groups,
            bias=module.bias is not None, cumulative_delay=cd,
        )
        _copy(m, module)
        return m, int(m.cumulative_delay)
    if isinstance(module, Pointwise):
        if not isinstance(module.fn, nn.Module):
            raise TypeError("only nn.Module activations can be ported")
        return module.fn, cd
    if isinstance(module, Residual):
        body, delay = port(module.branches[0], 0)
        align = cc.AlignBranches(body, nn.Identity(), delays=[delay, 0], cumulative_delay=cd)
        res = _Sum(align)
        return res, cd + delay
    if isinstance(module, Sequential):
        layers = []
        for child in module:
            if isinstance(child, Identity):
                continue
            layer, cd = port(child, cd)
            layers.append(layer)
        seq = cc.CachedSequential(*layers)
        seq.cumulative_delay = cd
        return seq, cd
    if isinstance(module, Parallel):
        raise TypeError("this port handles Residual only, not general Parallel branches")
    raise TypeError(f"no cached_conv equivalent for {type(module).__name__}")
