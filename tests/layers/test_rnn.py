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


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("batch_first", [True, False])
def test_recurrent_step_one_frame_at_a_time_equals_the_whole_sequence(cls, batch_first):
    """The one streaming step of torch RNNs (layers and converter): one-frame chunks take the
    cell kernels, empty chunks keep the state, and the frames add up to the offline run."""
    from streamwise.layers.rnn import _cells, recurrent_step

    torch.manual_seed(0)
    rnn = cls(3, 5, num_layers=2, batch_first=batch_first).double().eval()
    assert _cells(rnn) and not _cells(rnn.train()) and not _cells(nn.RNN(3, 5).eval())
    rnn.eval()
    axis = 1 if batch_first else 0
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    x = x if batch_first else x.transpose(0, 1)
    with torch.no_grad():
        ref, ref_h = rnn(x)
        h = torch.zeros(2, 2, 5, dtype=torch.float64)
        state = (h, h.clone()) if cls is nn.LSTM else h
        ys = []
        for i in range(x.shape[axis]):
            y, same = recurrent_step(rnn, x.narrow(axis, i, 0), state)
            assert y.shape[axis] == 0 and same is state
            y, state = recurrent_step(rnn, x.narrow(axis, i, 1), state)
            ys.append(y)
    torch.testing.assert_close(torch.cat(ys, axis), ref, rtol=0, atol=1e-12)
    for got, want in zip(state if cls is nn.LSTM else (state,),
                         ref_h if cls is nn.LSTM else (ref_h,)):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
