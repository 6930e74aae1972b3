"""Unidirectional ``LSTM`` and ``GRU`` over ``[B, C, T]``: the hidden state is the stream state.

Bidirectional recurrences run backwards from the end of the sequence and cannot stream; asking for
one raises at construction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from streamwise.core.protocol import NotStreamableError, StreamingModule, itemsize, with_reset_rows


class _RNN(StreamingModule):
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

    def init_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> dict[str, Any]:
        shape = (self.num_layers, batch_size, self.hidden_size)
        h = torch.zeros(shape, device=device, dtype=dtype)
        hidden: Any = (h, h.clone()) if isinstance(self.rnn, nn.LSTM) else h
        return {"h": hidden, "t_in": 0, "start": torch.zeros(batch_size, dtype=torch.long,
                                                              device=device), "start_max": 0}

    def step(self, x: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        n, t = x.shape[-1], state["t_in"]
        if n == 0:
            return x.new_empty(x.shape[0], self.hidden_size, 0), state
        h = state["h"]
        starts = state["start"]
        bounds = (
            sorted({int(s) for s in starts.tolist() if t <= s < t + n})
            if state["start_max"] >= t
            else []
        )
        ys, cur = [], t
        for b in [*bounds, t + n]:  # a row restarts from zero history at its start frame
            if b > cur:
                y, h = self.rnn(x[..., cur - t : b - t].transpose(1, 2), h)
                ys.append(y)
                cur = b
            if b < t + n:
                h = _zero_rows(h, (starts == b).view(1, -1, 1))
        y = ys[0] if len(ys) == 1 else torch.cat(ys, 1)
        return y.transpose(1, 2), {**state, "h": h, "t_in": t + n}


    def reset_rows(self, state: dict[str, Any], mask: Tensor, start: int) -> dict[str, Any]:
        return with_reset_rows(state, mask, start)


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
