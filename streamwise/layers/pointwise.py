"""Layers that act on each frame alone: they stream with no state at all.

``Pointwise(fn)`` wraps any elementwise function or activation module; ``Linear`` and
``LayerNorm`` act over the channel axis (axis 1) of ``[B, C, T]``; ``BatchNorm`` streams in eval
mode only, where it is a fixed affine map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule


class Stateless(StreamingModule):
    """Base class: ``step`` is ``forward`` on the chunk; nothing is held back."""

    def state_spec(self, in_channels: int | None = None) -> dict[str, Any]:
        return {}

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        return self.forward(x), state



class Identity(Stateless):
    """Passes frames through unchanged (the skip path of ``Residual``)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class Pointwise(Stateless):
    """Any elementwise function or activation module, e.g. ``Pointwise(nn.ELU())``."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        fn = self.fn
        # an activation module's own forward, without nn.Module's call machinery per chunk
        return (fn.forward(x) if isinstance(fn, nn.Module) else fn(x)), state

    def extra_repr(self) -> str:
        return "" if isinstance(self.fn, nn.Module) else repr(self.fn)


class ReLU(Pointwise):
    """Streaming ``nn.ReLU``."""

    def __init__(self) -> None:
        super().__init__(nn.ReLU())


class ELU(Pointwise):
    """Streaming ``nn.ELU``."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(nn.ELU(alpha))


class GELU(Pointwise):
    """Streaming ``nn.GELU``."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__(nn.GELU(approximate))


class SiLU(Pointwise):
    """Streaming ``nn.SiLU``."""

    def __init__(self) -> None:
        super().__init__(nn.SiLU())


class Tanh(Pointwise):
    """Streaming ``nn.Tanh``."""

    def __init__(self) -> None:
        super().__init__(nn.Tanh())


class Sigmoid(Pointwise):
    """Streaming ``nn.Sigmoid``."""

    def __init__(self) -> None:
        super().__init__(nn.Sigmoid())


class LeakyReLU(Pointwise):
    """Streaming ``nn.LeakyReLU``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__(nn.LeakyReLU(negative_slope))


class PReLU(Pointwise):
    """Streaming ``nn.PReLU``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25) -> None:
        super().__init__(nn.PReLU(num_parameters, init))


class GLU(Stateless):
    """Gated linear unit over channels: the first half times the sigmoid of the second half."""

    def channels_out(self, in_channels: int | None) -> int | None:
        return None if in_channels is None else in_channels // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.glu(x, dim=1)


class Scale(Stateless):
    """Multiply by a constant (the half-step feed-forward of a Conformer block)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"{self.factor}"


class LogSoftmax(Stateless):
    """``log_softmax`` over the channel axis (axis 1) of each frame."""

    def forward(self, x: Tensor) -> Tensor:
        return x.log_softmax(1)


class Dropout(Stateless):
    """Dropout: identity in eval mode, which is how a stream runs."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)


class Linear(Stateless):
    """``nn.Linear`` over the channel axis of ``[B, C, T]`` (a 1x1 convolution)."""

    in_ndim = 3

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        ref = nn.Linear(in_features, out_features, bias)
        self.in_features, self.out_features = in_features, out_features
        self.fixed_in_channels, self.fixed_out_channels = in_features, out_features
        self.weight = ref.weight
        if ref.bias is not None:
            self.bias = ref.bias
        else:
            self.register_parameter("bias", None)



    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.transpose(1, -1), self.weight, self.bias).transpose(1, -1)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}"


class LayerNorm(Stateless):
    """``nn.LayerNorm`` over channels (axis 1) of each frame; never over time."""

    def __init__(self, num_channels: int, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(num_channels, eps=eps, elementwise_affine=elementwise_affine)
        self.num_channels = self.fixed_in_channels = num_channels


    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, -1)).transpose(1, -1)


class _BatchNorm(Stateless):
    """Batch norm over channels; streams only in eval mode (running statistics)."""

    norm: nn.modules.batchnorm._BatchNorm


    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        if self.training:
            raise RuntimeError(
                f"{type(self).__name__} uses batch statistics in training mode, which depend on "
                "the whole sequence; call model.eval() before streaming"
            )
        return self.norm(x), state


class BatchNorm1d(_BatchNorm):
    in_ndim = 3

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum)
        self.fixed_in_channels = num_features


class BatchNorm2d(_BatchNorm):
    in_ndim = 4

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
        self.fixed_in_channels = num_features
