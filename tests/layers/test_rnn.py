import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from tests.strategies import assert_streams_like_offline, chunkings


@given(data=st.data(), cls=st.sampled_from([sw.LSTM, sw.GRU]), layers=st.integers(1, 2),
       length=st.integers(1, 30))
def test_rnn_streams_exactly(data, cls, layers, length):
    torch.manual_seed(0)
    rnn = cls(3, 5, num_layers=layers)
    x = torch.randn(2, 3, length)
    assert_streams_like_offline(rnn, x, data.draw(chunkings(length)))


def test_rnn_equals_torch():
    rnn = sw.GRU(3, 4)
    ref = nn.GRU(3, 4, batch_first=True)
    ref.load_state_dict(rnn.rnn.state_dict())
    x = torch.randn(2, 3, 12)
    torch.testing.assert_close(rnn(x), ref(x.transpose(1, 2))[0].transpose(1, 2))


@pytest.mark.parametrize("cls", [sw.LSTM, sw.GRU])
def test_bidirectional_rnn_is_refused(cls):
    with pytest.raises(sw.NotStreamableError, match="bidirectional"):
        cls(3, 4, bidirectional=True)
