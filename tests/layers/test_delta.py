import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from streamwise.layers.delta import sparsity
from tests.strategies import assert_streams_like_offline, chunkings


def _signal(batch, length):
    return torch.randn(batch, 5, length).cumsum(-1) * 0.1  # slowly varying, like sensor data


@given(data=st.data(), thr=st.sampled_from([0.0, 0.01, 0.1]), batch=st.integers(1, 3),
       length=st.integers(1, 60), resync=st.integers(1, 20))
def test_delta_linear_streams_exactly(data, thr, batch, length, resync):
    torch.manual_seed(0)
    layer = sw.DeltaLinear(5, 4, threshold=thr, resync=resync)
    x = _signal(batch, length)
    assert_streams_like_offline(layer, x, data.draw(chunkings(length)))


@given(data=st.data(), thr=st.sampled_from([0.0, 0.05]), length=st.integers(1, 40))
def test_delta_gru_streams_exactly(data, thr, length):
    torch.manual_seed(0)
    layer = sw.DeltaGRU(5, 6, thr, thr)
    assert_streams_like_offline(layer, _signal(2, length), data.draw(chunkings(length)))


def test_threshold_zero_equals_dense_layers():
    torch.manual_seed(0)
    x = _signal(2, 200)
    lin = sw.DeltaLinear(5, 4)
    dense = torch.nn.functional.linear(x.transpose(1, 2), lin.weight, lin.bias).transpose(1, 2)
    torch.testing.assert_close(lin(x), dense, atol=1e-5, rtol=1e-5)
    gru = sw.DeltaGRU(5, 6)
    ref = gru.gru(x.transpose(1, 2))[0].transpose(1, 2)
    torch.testing.assert_close(gru(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("thr", [0.02, 0.1, 0.3])
def test_error_is_bounded_by_the_threshold_and_does_not_drift(thr):
    torch.manual_seed(0)
    lin = sw.DeltaLinear(5, 4, threshold=thr)
    x = _signal(1, 5000)
    with torch.no_grad():
        dense = torch.nn.functional.linear(x.transpose(1, 2), lin.weight, lin.bias).transpose(1, 2)
        err = (lin(x) - dense).abs()
    bound = float(lin.weight.detach().abs().sum(1).max()) * thr + 1e-5
    assert float(err.max()) <= bound
    # no drift: the error late in the stream is no larger than early on
    assert float(err[..., -1000:].max()) <= bound


def test_sparsity_grows_with_threshold():
    x = _signal(1, 500)
    fractions = []
    for thr in (0.0, 0.05, 0.2):
        s = sw.DeltaLinear(5, 4, threshold=thr).stream()
        s.push(x)
        sent, total = sparsity(s.state)
        fractions.append(sent / total)
    assert fractions[0] == 1.0 and fractions[0] > fractions[1] > fractions[2]


def test_delta_pointwise_wraps_a_pointwise_stack():
    torch.manual_seed(0)
    stack = sw.Sequential(sw.Conv1d(5, 8, 1), sw.ReLU(), sw.Linear(8, 3))
    delta = sw.delta_pointwise(stack, 0.0)
    x = _signal(2, 50)
    torch.testing.assert_close(delta(x), stack(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="only 1x1 convolutions are pointwise"):
        sw.delta_pointwise(sw.Sequential(sw.Conv1d(5, 5, 3)), 0.1)


def test_sparsity_loss_penalises_change():
    flat = torch.ones(1, 2, 10)
    wiggly = torch.randn(1, 2, 10)
    assert sw.delta_sparsity_loss(flat) == 0
    assert sw.delta_sparsity_loss(wiggly) > 0


def test_a_new_stream_reads_weights_changed_through_data():
    layer = sw.DeltaLinear(4, 3).double()
    x = torch.randn(1, 4, 6, dtype=torch.float64)
    layer.stream(dtype=torch.float64).push(x)
    layer.weight.data.copy_(torch.randn_like(layer.weight))
    y = layer.stream(dtype=torch.float64).push(x)
    torch.testing.assert_close(y, layer(x), rtol=1e-10, atol=1e-10)
