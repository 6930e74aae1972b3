import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from tests.strategies import assert_streams_like_offline, chunkings


def _layers():
    bn = sw.BatchNorm1d(4)
    bn.norm.running_mean.uniform_(-1, 1)
    bn.norm.running_var.uniform_(0.5, 2)
    return [
        sw.Linear(4, 6), sw.LayerNorm(4), bn, sw.Dropout(0.3), sw.ELU(), sw.GELU(), sw.ReLU(),
        sw.Tanh(), sw.Sigmoid(), sw.SiLU(), sw.LeakyReLU(0.1), sw.PReLU(),
        sw.Pointwise(torch.sin), sw.Pointwise(nn.Softplus()),
    ]


@given(data=st.data(), index=st.integers(0, 13), length=st.integers(1, 30))
def test_pointwise_streams_exactly(data, index, length):
    layer = _layers()[index]
    x = torch.randn(2, 4, length)
    assert_streams_like_offline(layer, x, data.draw(chunkings(length)))


def test_linear_and_layernorm_act_on_channels():
    lin = sw.Linear(4, 3)
    x = torch.randn(2, 4, 10)
    ref = nn.functional.linear(x.transpose(1, 2), lin.weight, lin.bias).transpose(1, 2)
    torch.testing.assert_close(lin(x), ref)
    ln = sw.LayerNorm(4)
    torch.testing.assert_close(ln(x).mean(1), torch.zeros(2, 10), atol=1e-6, rtol=0)


def test_batchnorm2d_streams_in_eval():
    bn = sw.BatchNorm2d(3).eval()
    x = torch.randn(2, 3, 5, 20)
    assert_streams_like_offline(bn, x, [3, 0, 17])


def test_batchnorm_in_training_mode_refuses_to_stream():
    bn = sw.BatchNorm1d(3)
    state = bn.init_state(1)
    with pytest.raises(RuntimeError, match="eval"):
        bn.train().step(torch.randn(1, 3, 4), state)
