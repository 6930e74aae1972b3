"""Streaming ``MaxPool1d`` and ``AvgPool1d``: windows aligned to the absolute sample index.

Because windows are placed on the stream's absolute clock (frame 0 = first frame), a chunking that
does not line up with the pooling stride still yields exactly the offline output (StreamiNNC's
pooling alignment); misalignment only delays an output until its window has fully arrived.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from streamwise.core.state import Dim
from streamwise.layers.window import TimeWindow


class _Pool1d(TimeWindow):
    in_ndim = 3

    def _init_pool(self, kernel_size: int, stride: int | None, padding: int, dilation: int) -> None:
        stride = kernel_size if stride is None else stride
        if padding > kernel_size // 2:
            raise ValueError(f"pool padding must be <= kernel_size // 2, got {padding}")
        self.kernel_size, self.pool_stride = kernel_size, stride
        self.padding, self.dilation = padding, dilation

    def _empty_out(self, x: Tensor) -> Tensor:
        return x.new_empty(x.shape[0], x.shape[1], 0)

    def extra_repr(self) -> str:
        mode = f"ceil_mode={getattr(self, 'ceil_mode', False)}, "
        return (
            f"kernel_size={self.kernel_size}, stride={self.pool_stride}, padding={self.padding}, "
            f"{mode}{self.extra_metadata()}"
        )


class MaxPool1d(_Pool1d):
    """Max pooling along time; padding counts as -inf as in torch; ``ceil_mode`` supported.

    ``padding="causal"`` pads ``span - 1`` frames on the left only (not a torch option): each
    output is the max over the current frame and the ones before it, with no lookahead.
    """

    def __init__(
        self,
        kernel_size: int,
        stride: int | None = None,
        padding: int | str = 0,
        dilation: int = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        span = dilation * (kernel_size - 1) + 1
        causal = padding == "causal"
        if isinstance(padding, str) and not causal:
            raise ValueError(f"MaxPool1d padding must be an int or 'causal', got {padding!r}")
        if causal and ceil_mode:
            raise ValueError("MaxPool1d: padding='causal' does not combine with ceil_mode")
        self._init_pool(kernel_size, stride, 0 if causal else int(padding), dilation)
        self.ceil_mode, self.causal = ceil_mode, causal
        left, right = (span - 1, 0) if causal else (self.padding, self.padding)
        self._setup_window(span, self.pool_stride, left, right, pad_value=float("-inf"))

    def forward(self, x: Tensor) -> Tensor:
        if self.causal:
            x = F.pad(x, (self._pad_left, 0), value=float("-inf"))
        return F.max_pool1d(
            x, self.kernel_size, self.pool_stride, self.padding, self.dilation, self.ceil_mode
        )

    def _window_op(self, window: Tensor, m: int) -> Tensor:
        return F.max_pool1d(window, self.kernel_size, self.pool_stride, 0, self.dilation)

    def _n_blocks(self, length: int) -> int:
        if not self.ceil_mode:
            return super()._n_blocks(length)
        # torch: ceil((T + 2p - span) / s) + 1, then the last window must start inside
        n = (length + 2 * self.padding - self._span + self._hop - 1) // self._hop + 1
        if n > 0 and (n - 1) * self._hop >= length + self.padding:
            n -= 1
        return max(n, 0)

    def _flush_pad(self) -> int:
        return self._pad_right + (self._hop + self._span if self.ceil_mode else 0)


class AvgPool1d(_Pool1d):
    """Average pooling along time; ``count_include_pad`` either way, as in torch."""

    def __init__(
        self,
        kernel_size: int,
        stride: int | None = None,
        padding: int = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        if ceil_mode:
            raise ValueError(
                "AvgPool1d(ceil_mode=True) is not supported: its last divisor depends on the "
                "stream's length; pad the input or use ceil_mode=False"
            )
        self._init_pool(kernel_size, stride, padding, 1)
        self.count_include_pad = count_include_pad
        self._setup_window(kernel_size, self.pool_stride, padding, padding)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(
            x, self.kernel_size, self.pool_stride, self.padding,
            count_include_pad=self.count_include_pad,
        )

    def step(self, x: Tensor, state: dict) -> tuple[Tensor, dict]:
        if not self.count_include_pad:  # carry an indicator channel that counts real frames
            x = torch.cat([x, torch.ones_like(x[:, :1])], 1)
        return super().step(x, state)

    def _window_op(self, window: Tensor, m: int) -> Tensor:
        y = F.avg_pool1d(window, self.kernel_size, self.pool_stride, 0)
        if self.count_include_pad:
            return y
        return y[:, :-1] / y[:, -1:]

    def _frame_shape(self, in_channels: int | None) -> tuple[Dim, ...]:
        # without count_include_pad a channel of ones travels with the frames (the divisor)
        extra = 0 if self.count_include_pad else 1
        return (None if in_channels is None else in_channels + extra,)

    def _empty_out(self, x: Tensor) -> Tensor:
        c = x.shape[1] - (0 if self.count_include_pad else 1)
        return x.new_empty(x.shape[0], c, 0)
