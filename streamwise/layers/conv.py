"""Streaming ``Conv1d`` (``[B, C, T]``) and ``Conv2d`` (``[B, C, F, T]``), equal to ``torch.nn``.

Non-causal padding is not an error: the right padding becomes lookahead (``delay``), and ``flush``
supplies it at the end of the stream.  Parameters have torch's names and initialisation, so an
offline ``state_dict`` loads as it is.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamwise.core.state import Dim
from streamwise.core.torch_layers import live_weight, weight_norms
from streamwise.layers.window import PadSpec, TimeWindow, resolve_time_padding

_PAD_MODES = ("zeros", "replicate")


def _check_padding_mode(padding_mode: str) -> None:
    if padding_mode not in _PAD_MODES:
        raise ValueError(
            f"padding_mode {padding_mode!r} cannot stream: use one of {_PAD_MODES} "
            "('reflect' and 'circular' read frames from the far end of the sequence)"
        )


def _copy_params(dst: nn.Module, ref: nn.Module) -> None:
    """Share ``ref``'s parameters with ``dst``.  Where ``ref`` computes its weight (weight norm,
    a parametrisation), ``dst`` becomes its ``TorchBacked`` class, keeping ``ref`` as
    ``source`` and reading the weight from it live; plain layers pay nothing for that."""
    if isinstance(ref._parameters.get("weight"), nn.Parameter) and not weight_norms(ref):
        dst.weight = ref.weight
        if ref.bias is not None:
            dst.bias = ref.bias
        else:
            dst.register_parameter("bias", None)
        return
    backed = BACKED.get(type(dst))
    if backed is None:
        raise TypeError(f"{type(dst).__name__} cannot read a computed (weight-normalised or "
                        f"parametrised) weight; build a {', '.join(c.__name__ for c in BACKED)}")
    del dst.weight, dst.bias
    dst.__class__ = backed
    dst.source = ref  # registered: .double(), .to() and the state_dict reach its parameters


class TorchBacked:
    """``weight`` and ``bias`` read from the torch layer ``source`` at every use, as its own
    forward would compute them (see ``_copy_params``)."""

    source: nn.Module

    @property
    def weight(self) -> Any:
        return live_weight(self.source, "weight")

    @property
    def bias(self) -> Any:
        return live_weight(self.source, "bias")


#: each layer class -> its ``TorchBacked`` variant
BACKED: dict[type, type] = {}


class Conv1d(TimeWindow):
    """1-D convolution over ``[B, C, T]`` with ``padding='causal'|'same'|'valid'|int|(l, r)``."""

    weight: Tensor
    bias: Tensor | None

    in_ndim = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: PadSpec = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_padding_mode(padding_mode)
        ref = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias,
            device=device, dtype=dtype,
        )
        _copy_params(self, ref)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.fixed_in_channels, self.fixed_out_channels = in_channels, out_channels
        self.kernel_size, self.conv_stride = kernel_size, stride
        self.dilation, self.groups, self.padding_mode = dilation, groups, padding_mode
        span = dilation * (kernel_size - 1) + 1
        self.padding = resolve_time_padding(padding, span, stride)
        replicate = padding_mode == "replicate" and self.padding != (0, 0)
        self._setup_window(span, stride, *self.padding, replicate=replicate)

    @classmethod
    def from_torch(cls, conv: nn.Conv1d) -> Conv1d:
        """Wrap an existing ``nn.Conv1d`` (its parameters are shared, not copied)."""
        pad = conv.padding if isinstance(conv.padding, str) else int(conv.padding[0])
        new = cls(
            conv.in_channels, conv.out_channels, int(conv.kernel_size[0]), int(conv.stride[0]),
            pad, int(conv.dilation[0]), conv.groups, conv.bias is not None, conv.padding_mode,
        )
        _copy_params(new, conv)
        return new


    def forward(self, x: Tensor) -> Tensor:
        mode = "replicate" if self.padding_mode == "replicate" else "constant"
        if x.shape[-1] + sum(self.padding) < self.dilation * (self.kernel_size - 1) + 1:
            return self._empty_out(x)  # shorter than one window: no frame (torch refuses)
        x = F.pad(x, self.padding, mode=mode)
        return self._window_op(x, -1)

    def _window_op(self, window: Tensor, m: int) -> Tensor:
        return F.conv1d(
            window, self.weight, self.bias, self.conv_stride, 0, self.dilation, self.groups
        )

    def _empty_out(self, x: Tensor) -> Tensor:
        return x.new_empty(x.shape[0], self.out_channels, 0)

    def _frame_shape(self, in_channels: int | None) -> tuple[Dim, ...]:
        return (self.in_channels,)


    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.conv_stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, padding_mode={self.padding_mode!r}, {self.extra_metadata()}"
        )


class Conv2d(TimeWindow):
    """2-D convolution over ``[B, C, F, T]``: time (last axis) streams, frequency is as offline.

    ``padding`` is ``(freq, time)``: ``freq`` an int, ``time`` any of Conv1d's specs; a single
    value applies to both axes (``'causal'`` pads time causally and frequency symmetrically).
    ``freq_bins`` (the input's frequency size) only makes ``state_nbytes`` exact.
    """

    weight: Tensor
    bias: Tensor | None

    in_ndim = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: PadSpec | tuple[int, PadSpec] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        freq_bins: int | None = None,
    ) -> None:
        super().__init__()
        self.freq_bins = freq_bins  # only sizes the state bound (state_nbytes)
        kf, kt = _pair(kernel_size)
        sf, st = _pair(stride)
        df, dt = _pair(dilation)
        ref = nn.Conv2d(
            in_channels, out_channels, (kf, kt), (sf, st), 0, (df, dt), groups, bias,
            device=device, dtype=dtype,
        )
        _copy_params(self, ref)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.fixed_in_channels, self.fixed_out_channels = in_channels, out_channels
        self.kernel_size, self.conv_stride, self.dilation = (kf, kt), (sf, st), (df, dt)
        span_f, span_t = df * (kf - 1) + 1, dt * (kt - 1) + 1
        if isinstance(padding, tuple) and len(padding) == 2 and not isinstance(padding[0], int):
            raise ValueError("Conv2d padding=(freq, time) needs an int for the frequency axis")
        if isinstance(padding, tuple) and isinstance(padding[0], int) and len(padding) == 2:
            pad_f: int = padding[0]
            pad_t_spec: PadSpec = padding[1]
        elif isinstance(padding, str):
            pad_f = (span_f - 1) // 2 if padding in ("same", "causal") else 0
            if padding == "same" and (span_f - 1) % 2:
                raise ValueError("padding='same' needs an odd frequency span for Conv2d here")
            pad_t_spec = padding
        else:
            pad_f = int(padding)
            pad_t_spec = int(padding)
        self.freq_padding = pad_f
        self.padding = resolve_time_padding(pad_t_spec, span_t, st)
        self._setup_window(span_t, st, *self.padding)


    def forward(self, x: Tensor) -> Tensor:
        return self._window_op(F.pad(x, self.padding), -1)

    def _window_op(self, window: Tensor, m: int) -> Tensor:
        return F.conv2d(
            window, self.weight, self.bias, self.conv_stride, (self.freq_padding, 0),
            self.dilation, self.groups,
        )

    def _empty_out(self, x: Tensor) -> Tensor:
        kf, sf, df = self.kernel_size[0], self.conv_stride[0], self.dilation[0]
        f_out = (x.shape[2] + 2 * self.freq_padding - df * (kf - 1) - 1) // sf + 1
        return x.new_empty(x.shape[0], self.out_channels, f_out, 0)

    def _frame_shape(self, in_channels: int | None) -> tuple[Dim, ...]:
        return (self.in_channels, self.freq_bins)


    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.conv_stride}, time_padding={self.padding}, "
            f"freq_padding={self.freq_padding}, {self.extra_metadata()}"
        )


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class TorchBackedConv1d(TorchBacked, Conv1d):  # type: ignore[override]
    """A ``Conv1d`` over a weight-normalised or parametrised ``nn.Conv1d`` (``from_torch``)."""


BACKED[Conv1d] = TorchBackedConv1d
