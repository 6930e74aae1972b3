"""Unidirectional ``LSTM`` and ``GRU`` over ``[B, C, T]``: the hidden state is the stream state.

Bidirectional recurrences run backwards from the end of the sequence and cannot stream; asking for
one raises at construction.  ``recurrent_step`` is the one streaming step of a torch recurrent
layer, used by these layers and by the converter (``sw.convert``) for the ``nn.RNN``/``nn.GRU``/
``nn.LSTM`` it finds in a model: one-frame chunks take torch's cell kernels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from streamwise.core.protocol import NotStreamableError
from streamwise.core.state import Spec, tensor
from streamwise.layers.recurrence import Recurrence


def recurrent_step(rnn: nn.RNNBase, x: Tensor, h: Any) -> tuple[Tensor, Any]:
    """Run one chunk ``x`` (time on axis 1 if ``rnn.batch_first``, else 0) through a
    unidirectional ``rnn`` from hidden state ``h``: its output frames and the new hidden state.

    A chunk of no frames gives none and keeps ``h``; one frame goes through torch's cell kernels
    where the layer allows (a full RNN call costs several times more for a sequence of one)."""
    axis = 1 if rnn.batch_first else 0
    n = x.shape[axis]
    if not n:
        shape = [0, 0, getattr(rnn, "proj_size", 0) or rnn.hidden_size]
        shape[1 - axis] = x.shape[1 - axis]
        return x.new_zeros(shape), h
    if n == 1 and _cells(rnn):
        return _one_frame(rnn, x.select(axis, 0), h, axis)
    return rnn(x, h)


def _cells(rnn: nn.RNNBase) -> bool:
    """Whether one frame may take the cell kernels: an LSTM or GRU with biases, no projection,
    in eval mode (no dropout between layers)."""
    return (type(rnn) in (nn.LSTM, nn.GRU) and not getattr(rnn, "proj_size", 0) and rnn.bias
            and not rnn.training)


def _one_frame(rnn: nn.RNNBase, inp: Tensor, state: Any, axis: int) -> tuple[Tensor, Any]:
    lstm = isinstance(rnn, nn.LSTM)
    hs, cs = state if lstm else (state, None)
    new_h, new_c = [], []
    for k in range(rnn.num_layers):
        w = [getattr(rnn, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if lstm:
            assert cs is not None
            h, c = torch.lstm_cell(inp, (hs[k], cs[k]), *w)
            new_c.append(c)
        else:
            h = torch.gru_cell(inp, hs[k], *w)
        new_h.append(h)
        inp = h
    h_all = torch.stack(new_h)
    return inp.unsqueeze(axis), ((h_all, torch.stack(new_c)) if lstm else h_all)


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

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x.transpose(1, 2))[0].transpose(1, 2)

    def _inner_spec(self, in_channels: int | None) -> Spec:
        h = tensor(self.num_layers, "B", self.hidden_size, batch_axis=1)
        return (h, h) if isinstance(self.rnn, nn.LSTM) else h

    def _advance(self, x: Tensor, h: Any, t: int) -> tuple[Tensor, Any]:
        y, h = recurrent_step(self.rnn, x.transpose(1, 2), h)
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
