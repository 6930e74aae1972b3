"""Every kind of streaming layer exported to ONNX streams like its offline forward, from the first
sample to the last: random chunkings (sizes 0 and 1), batches 1-3, a run of chunks after start."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamwise as sw
from streamwise.export import NotExportableError, onnx
from streamwise.models.seanet import denoiser
from streamwise.models.tiny_vad import tiny_vad
from tests.export.exported import assert_onnx_streams_like_offline, exported
from tests.strategies import chunkings


def _ct() -> sw.StreamingModule:
    return sw.ConvTranspose1d(3, 4, 5, stride=3, padding=1)


CASES = {  # name: (factory, chunk, example input)
    "conv_same": (lambda: sw.Conv1d(3, 4, 5, padding="same"), 4, (1, 3, 9)),
    "conv_replicate": (lambda: sw.Conv1d(3, 4, 5, padding="same", padding_mode="replicate"), 4,
                       (1, 3, 9)),
    "conv_strided_dilated": (lambda: sw.Conv1d(3, 4, 3, stride=2, dilation=2, padding=2), 4,
                             (1, 3, 9)),
    "conv2d": (lambda: sw.Conv2d(2, 3, 3, padding=1), 4, (1, 2, 5, 9)),
    "conv_transpose": (_ct, 3, (1, 3, 9)),
    "max_pool": (lambda: sw.MaxPool1d(3, 2, padding=1), 4, (1, 3, 9)),
    "avg_pool": (lambda: sw.AvgPool1d(4, 2), 4, (1, 3, 9)),
    "upsample": (lambda: sw.Upsample(scale_factor=2, mode="linear"), 4, (1, 3, 9)),
    "residual": (lambda: sw.Residual(sw.Sequential(sw.Conv1d(3, 3, 3, padding="same"),
                                                   sw.ELU())), 4, (1, 3, 9)),
    "parallel": (lambda: sw.Parallel(sw.Conv1d(3, 3, 3, padding="same"),
                                     sw.Conv1d(3, 3, 5, padding="causal")), 4, (1, 3, 9)),
    "sequential_strides": (lambda: sw.Sequential(
        sw.Conv1d(3, 6, 5, padding="same"), sw.ELU(), sw.Conv1d(6, 6, 4, stride=2, padding=1),
        sw.ConvTranspose1d(6, 3, 4, stride=2, padding=1), sw.Tanh()), 4, (1, 3, 9)),
    "gru": (lambda: sw.GRU(3, 5), 4, (1, 3, 9)),
    "lstm": (lambda: sw.LSTM(3, 5), 4, (1, 3, 9)),
    "lmu": (lambda: sw.LMU(3, 4, 8, 10.0), 4, (1, 3, 9)),
    "aaren": (lambda: sw.Aaren(6, 2), 4, (1, 6, 9)),
    "delta_gru_threshold_0": (lambda: sw.DeltaGRU(3, 5), 4, (1, 3, 9)),
    "pool_mixer": (lambda: sw.CausalPoolingMixer(4, segment=4, local=3), 4, (1, 4, 9)),
    "pool_mixer_attend": (lambda: sw.CausalPoolingMixer(4, segment=4, local=3, attend=5), 4,
                          (1, 4, 9)),
    "lif": (lambda: sw.LIF(3, 5), 4, (1, 3, 9)),
    "delta_linear_threshold_0": (lambda: sw.DeltaLinear(3, 4), 4, (1, 3, 9)),
    "pointwise_stack": (lambda: sw.Sequential(
        sw.LayerNorm(4), sw.Linear(4, 8), sw.GLU(), sw.BatchNorm1d(4), sw.PReLU(), sw.Sigmoid(),
        sw.LeakyReLU(), sw.GELU(), sw.SiLU(), sw.Scale(0.5), sw.Dropout()), 4, (1, 4, 9)),
    "lmu_former_block": (lambda: sw.lmu_former_block(3, 8, order=4, theta=8.0, patch=2), 4,
                         (1, 3, 9)),
    "tiny_vad": (lambda: tiny_vad(hidden=8), 160, (1, 1, 480)),
    "denoiser": (lambda: denoiser(), 16, (1, 1, 400)),
    "conv_gru_stack": (lambda: sw.Sequential(sw.Conv1d(3, 4, 5, padding="same"), sw.GRU(4, 5),
                                             sw.Linear(5, 2)), 4, (1, 3, 9)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_exported_layer_streams_like_offline(name, data):
    build, chunk, shape = CASES[name]
    e = exported(name, build, chunk, torch.randn(shape))
    batch = data.draw(st.integers(1, 3), label="batch")
    length = e.length(data.draw(st.integers(0, 4), label="chunks after start"))
    x = e.input(batch, length, seed=data.draw(st.integers(0, 9)))
    assert_onnx_streams_like_offline(e, x, data.draw(chunkings(length), label="sizes"))


def test_float64_conv_is_refused_by_name(tmp_path):
    # onnxruntime's CPU Conv has no float64 kernel: the export says so and writes nothing
    m = sw.Sequential(sw.Conv1d(3, 4, 5, padding="same"), sw.ELU()).double()
    with pytest.raises(NotExportableError, match=r"float64.*export in float32"):
        onnx(m, tmp_path / "m.onnx", chunk=4, example=torch.randn(1, 3, 9, dtype=torch.float64))
    assert list(tmp_path.iterdir()) == []
