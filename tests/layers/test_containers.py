import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from tests.strategies import assert_streams_like_offline, chunkings


def composite() -> sw.Sequential:
    """Residual + strided + transposed + parallel, with non-causal convs everywhere."""
    return sw.Sequential(
        sw.Conv1d(3, 8, 5, padding="same"),
        sw.ELU(),
        sw.Residual(sw.Sequential(sw.Conv1d(8, 8, 3, padding=(0, 2)), sw.Tanh(),
                                  sw.Conv1d(8, 8, 1))),
        sw.Conv1d(8, 8, 4, stride=2, padding=1),
        sw.Parallel(sw.Conv1d(8, 4, 3, padding="same"), sw.Conv1d(8, 4, 1),
                    sw.Sequential(sw.MaxPool1d(3, 1, 1), sw.Conv1d(8, 2, 5, padding=(1, 3))),
                    merge="cat"),
        sw.ConvTranspose1d(10, 6, 4, stride=2, padding=1),
        sw.Upsample(2, "linear"),
        sw.AvgPool1d(2),
        sw.Residual(sw.Conv1d(6, 6, 7, padding=(2, 4), dilation=1)),
        sw.Linear(6, 3),
    )


@given(data=st.data(), batch=st.integers(1, 3), length=st.integers(8, 70))
def test_composite_model_streams_exactly(data, batch, length):
    torch.manual_seed(0)
    model = composite()
    x = torch.randn(batch, 3, length)
    assert_streams_like_offline(model, x, data.draw(chunkings(length)))


def test_composite_float64_to_1e_10():
    torch.manual_seed(1)
    model = composite().double()
    x = torch.randn(2, 3, 200, dtype=torch.float64)
    report = sw.verify(model, x, trials=5)
    assert report.max_abs_error <= 1e-10 * max(report.output_scale, 1.0)


def test_parallel_aligns_branches_of_different_delays():
    a = sw.Conv1d(1, 1, 9, padding=(0, 8))  # 8 frames of lookahead
    b = sw.Conv1d(1, 1, 1)  # none
    par = sw.Parallel(a, b, merge="sum")
    assert par.delay == 8
    x = torch.randn(1, 1, 40)
    s = par.stream()
    first = s.push(x[..., :10])
    assert first.shape[-1] == 2  # only frames both branches have
    y = torch.cat([first, s.push(x[..., 10:]), s.close()], -1)
    torch.testing.assert_close(y, par(x))


def test_parallel_mul_merge_and_metadata():
    par = sw.Parallel(sw.Conv1d(2, 2, 3, padding="same"), sw.Sigmoid(), merge="mul")
    x = torch.randn(2, 2, 30)
    assert_streams_like_offline(par, x, [5, 0, 1, 24])
    assert par.channels_out(2) == 2


def test_parallel_rejects_unequal_strides():
    with pytest.raises(ValueError, match="equal strides"):
        sw.Parallel(sw.Conv1d(1, 1, 2, stride=2), sw.Conv1d(1, 1, 1))


def test_residual_needs_stride_one():
    with pytest.raises(ValueError, match="stride"):
        sw.Residual(sw.Conv1d(1, 1, 2, stride=2))


def test_sequential_wraps_torch_layers_and_rejects_others():
    seq = sw.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.ReLU(), nn.ConvTranspose1d(3, 2, 4, 2, 1))
    assert isinstance(seq[0], sw.Conv1d) and isinstance(seq[2], sw.ConvTranspose1d)
    assert_streams_like_offline(seq, torch.randn(1, 2, 25), [4, 0, 21])
    with pytest.raises(TypeError, match="GroupNorm is not a StreamingModule"):
        sw.Sequential(nn.GroupNorm(1, 2))


def test_metadata_composes():
    seq = sw.Sequential(
        sw.Conv1d(1, 1, 3, padding="same"),  # delay 1, rf 3
        sw.Conv1d(1, 1, 2, stride=2),  # output 2o needs frame 2o+1: delay 1, rf 2
        sw.Conv1d(1, 1, 3, padding="same"),  # delay 1 at half rate = 2 input frames
    )
    assert seq.stride == sw.Sequential(sw.Conv1d(1, 1, 2, stride=2)).stride == 0.5
    assert seq.delay == 1 + 1 + 2
    assert sw.verify(seq, torch.randn(1, 1, 64), trials=1).measured_delay_frames == 4
    assert seq.receptive_field == 3 + 1 + 2 * 2
    assert seq.period == 2


def test_parallel_receptive_field_covers_every_branch_window():
    par = sw.Parallel(sw.Conv1d(1, 1, 3, padding=(2, 0)), sw.Conv1d(1, 1, 3, padding=(0, 2)))
    x = torch.randn(1, 1, 21, requires_grad=True)
    par(x)[0, 0, 10].backward()
    touched = (x.grad[0, 0] != 0).nonzero().flatten()
    assert par.receptive_field == int(touched.max() - touched.min() + 1) == 5
