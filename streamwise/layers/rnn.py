"""Unidirectional ``LSTM`` and ``GRU`` over ``[B, C, T]``: the hidden state is the stream state.

Bidirectional recurrences run backwards from the end of the sequence and cannot stream; asking for
one raises at construction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from streamwise.core.protocol import NotStreamableError, itemsize
from streamwise.layers.recurrence import Recurrence


class _RNN(Recurrence):
    in_ndim = 3
    rnn: nn.LSTM | nn.GRU
    _cls: type[nn.LSTM] | type[nn.GRU]

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
        dropout: float = 0.0, bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if bidirectional:
            raise NotStreamableError(
                f"{type(self).__name__}(bidirectional=True) cannot stream exactly: its backward "
                "direction starts at the end of the sequence. Use bidirectional=False, or a "
                "window adapter with a measured error"
            )
        self.rnn = self._cls(input_size, hidden_size, num_layers, bias, True, dropout)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.fixed_in_channels, self.fixed_out_channels = input_size, hidden_size


    @property
    def receptive_field(self) -> int:
        return 1  # plus the whole past, through the hidden state


    def state_nbytes(
        self,
        batch_size: int,
        dtype: torch.dtype = torch.float32,
        in_channels: int | None = None,
    ) -> int:
        n = 2 if isinstance(self.rnn, nn.LSTM) else 1
        item = itemsize(dtype)
        return n * self.num_layers * batch_size * self.hidden_size * item + 8 * batch_size

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x.transpose(1, 2))[0].transpose(1, 2)

    def _fresh(self, batch_size: int, device: Any, dtype: Any) -> Any:
        h = torch.zeros((self.num_layers, batch_size, self.hidden_size), device=device,
                        dtype=dtype)
        return (h, h.clone()) if isinstance(self.rnn, nn.LSTM) else h

    def _advance(self, x: Tensor, h: Any, t: int) -> tuple[Tensor, Any]:
        y, h = self.rnn(x.transpose(1, 2), h)
        return y.transpose(1, 2), h

    def _restart(self, h: Any, rows: Tensor, t: int) -> Any:
        return _zero_rows(h, rows.view(1, -1, 1))


def _zero_rows(h: Any, rows: Tensor) -> Any:
    if isinstance(h, tuple):
        return tuple(torch.where(rows, 0.0, t) for t in h)
    return torch.where(rows, 0.0, h)


class LSTM(_RNN):
    """Unidirectional ``nn.LSTM`` on ``[B, C, T]`` (channels = features, time last)."""

    _cls = nn.LSTM


class GRU(_RNN):
    """Unidirectional ``nn.GRU`` on ``[B, C, T]`` (channels = features, time last)."""

    _cls = nn.GRU
