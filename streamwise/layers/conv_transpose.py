"""Streaming ``ConvTranspose1d`` by overlap-add, equal to ``torch.nn.ConvTranspose1d``.

Input frame ``i`` adds its kernel response to uncropped output positions ``[i*s, i*s + span)``.
A position is final once no later input can reach it, i.e. before ``(frames seen) * s``; partial
sums past that wait in the state.  ``padding`` crops the first and last positions offline, which
here means skipping the first ``padding`` positions and stopping ``flush`` at the offline length.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule, empty_output, with_reset_rows
from streamwise.core.state import Spec, clock, restart, tensor
from streamwise.layers.conv import BACKED, TorchBacked, _copy_params
from streamwise.layers.window import keep_tail


class ConvTranspose1d(StreamingModule):
    """Transposed 1-D conv over ``[B, C, T]``; any kernel, stride, padding, output_padding."""

    weight: Tensor
    bias: Tensor | None

    in_ndim = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        output_padding: int = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ref = nn.ConvTranspose1d(
            in_channels, out_channels, kernel_size, stride, padding, output_padding, groups,
            bias, dilation, device=device, dtype=dtype,
        )
        _copy_params(self, ref)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.fixed_in_channels, self.fixed_out_channels = in_channels, out_channels
        self.kernel_size, self.conv_stride, self.padding = kernel_size, stride, padding
        self.output_padding, self.groups, self.dilation = output_padding, groups, dilation
        self._span = dilation * (kernel_size - 1) + 1
        # positions that are final but may still fall past the offline end are held back
        self._hold = max(0, stride + padding - self._span - output_padding)

    @classmethod
    def from_torch(cls, conv: nn.ConvTranspose1d) -> ConvTranspose1d:
        """Wrap an existing ``nn.ConvTranspose1d`` (its parameters are shared, not copied)."""
        new = cls(
            conv.in_channels, conv.out_channels, int(conv.kernel_size[0]), int(conv.stride[0]),
            int(conv.padding[0]), int(conv.output_padding[0]), conv.groups,
            conv.bias is not None, int(conv.dilation[0]),
        )
        _copy_params(new, conv)
        return new


    @property
    def stride(self) -> Fraction:
        return Fraction(self.conv_stride)

    @property
    def delay(self) -> Fraction:
        # output j = q*s + r comes out with input frame (j + padding + hold) // s
        s = self.conv_stride
        pad = self.padding + self._hold
        return max(Fraction((r + pad) // s) - Fraction(r, s) for r in range(s))

    @property
    def receptive_field(self) -> int:
        return -(-self._span // self.conv_stride)


    def state_spec(self, in_channels: int | None = None) -> Spec:
        return {
            # partial sums for uncropped positions [acc_start, ...), made on the first chunk
            "acc": tensor("B", self.out_channels, self._span + self._hold, grows=-1, lazy=True),
            "acc_start": clock(),
            "t_in": clock(),
            "start": tensor("B", dtype=torch.long),
            "start_max": restart(),
        }

    def forward(self, x: Tensor) -> Tensor:
        return F.conv_transpose1d(
            x, self.weight, self.bias, self.conv_stride, self.padding, self.output_padding,
            self.groups, self.dilation,
        )

    def reset_rows(self, state: dict[str, Any], mask: Tensor, start: int) -> dict[str, Any]:
        new = with_reset_rows(state, mask, start)
        if new["acc"] is not None:  # old inputs' contributions must not reach the new stream
            keep = (~mask).to(new["acc"].dtype).view(-1, 1, 1)
            new["acc"] = new["acc"] * keep
        return new

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        n, s, t_in = x.shape[-1], self.conv_stride, state["t_in"]
        if n == 0:
            return x.new_empty(x.shape[0], self.out_channels, 0), state
        if state["start_max"] > t_in:
            pos = torch.arange(t_in, t_in + n, device=x.device)
            x = x.masked_fill((pos[None, :] < state["start"][:, None])[:, None, :], 0.0)
        y = F.conv_transpose1d(x, self.weight, None, s, 0, 0, self.groups, self.dilation)
        z = self._add_pending(y, state, t_in * s)
        end = (t_in + n) * s - self._hold
        out, new = self._emit(z, state, end)
        new["t_in"] = t_in + n
        return out, new

    def flush(self, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        t = state["t_in"]
        if t == 0 or state["acc"] is None:
            return empty_output(self, state), state
        end = (t - 1) * self.conv_stride + self._span + self.output_padding - self.padding
        acc = state["acc"]
        return self._emit(acc, state, end)

    def _add_pending(self, y: Tensor, state: dict[str, Any], y_start: int) -> Tensor:
        """Partial sums from earlier chunks added to this chunk's response (a new tensor)."""
        acc = state["acc"]
        lead = y_start - state["acc_start"]
        if lead:
            y = F.pad(y, (lead, 0))
        if acc is not None and acc.shape[-1]:
            y[..., : acc.shape[-1]] += acc
        return y

    def _emit(self, z: Tensor, state: dict[str, Any], end: int) -> tuple[Tensor, dict[str, Any]]:
        """Emit positions ``[acc_start, end)`` of ``z`` (cropping the first ``padding``)."""
        z_start = state["acc_start"]
        count = end - z_start
        if count > z.shape[-1]:
            z = F.pad(z, (0, count - z.shape[-1]))
        lo = max(0, self.padding - z_start)
        out = z[..., lo : max(count, lo)]
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1)
        new = dict(state)
        new["acc"] = keep_tail(z, max(count, 0))
        new["acc_start"] = max(end, z_start)
        return out, new


class TorchBackedConvTranspose1d(TorchBacked, ConvTranspose1d):  # type: ignore[override]
    """A ``ConvTranspose1d`` over a weight-normalised or parametrised torch one (``from_torch``,
    or ``F.conv_transpose1d``'s weight read from a converted graph)."""


BACKED[ConvTranspose1d] = TorchBackedConvTranspose1d
