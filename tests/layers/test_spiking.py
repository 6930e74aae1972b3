import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from tests.strategies import assert_streams_like_offline, chunkings


@given(data=st.data(), beta=st.floats(0.0, 0.99), thr=st.floats(0.1, 2.0),
       batch=st.integers(1, 3), length=st.integers(1, 60))
def test_lif_streams_exactly(data, beta, thr, batch, length):
    torch.manual_seed(0)
    lif = sw.LIF(3, 6, beta=beta, threshold=thr)
    x = torch.randn(batch, 3, length)
    y = assert_streams_like_offline(lif, x, data.draw(chunkings(length)), rtol=0.0)
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_lif_dynamics_by_hand():
    lif = sw.LIF(1, 1, beta=0.5, threshold=1.0)
    with torch.no_grad():
        lif.fc.weight.fill_(1.0)
        lif.fc.bias.zero_()
    x = torch.tensor([[[0.6, 0.6, 0.6, 0.0, 2.0]]])
    # v: 0.6, 0.9, 1.05 -> spike, 0.525-1 = -0.475, -0.2375+2 = 1.7625 -> spike
    assert lif(x).flatten().tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]


def test_surrogate_gradient_flows():
    lif = sw.LIF(2, 3)
    x = torch.randn(1, 2, 20, requires_grad=True)
    lif(x * 3).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_prototype_readout_learns_a_new_class_from_few_examples():
    torch.manual_seed(0)
    readout = sw.PrototypeReadout(8)
    base = [torch.zeros(8).index_fill(0, torch.tensor([i, i + 1]), 1.0) for i in (0, 3, 6)]
    for b in base[:2]:
        readout.add_class(b + 0.1 * torch.rand(5, 8))
    new = readout.add_class(base[2] + 0.1 * torch.rand(3, 8))  # 3 examples, no backprop
    test = torch.stack([b + 0.1 * torch.rand(8) for b in base])
    assert readout(test).argmax(1).tolist() == [0, 1, new]
    readout.update(base[2], new, lr=0.5)
    with pytest.raises(ValueError, match="unknown class"):
        readout.update(base[0], 7)
    with pytest.raises(ValueError, match="add_class needs"):
        readout.add_class(torch.zeros(0, 8))
