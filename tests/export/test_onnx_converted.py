"""Plain torch models from the converter's zoo, converted with ``sw.convert`` in float32 and
exported to ONNX, stream like their offline forward: HiFi-GAN (non-causal, lookahead), causal
MelGAN, EnCodec's causal encoder (stride 8, LSTM), a causal TCN, the Vocos ConvNeXt backbone and
the causal Demucs denoiser (strides 4 x 3, LSTM; its state repeats every 64 frames), driven by
``OnnxStream`` over random chunkings (sizes 0 and 1), batches 1-3 and runs of chunks after the
start, equal to ``model(x)`` to 1e-5 of the output's scale.

Each model is converted once and exported once per session with a chunk that is a multiple of
its period (the converted model's input frames per output frame group); the denoiser at a chunk
shorter than its strides' phase is refused, naming the chunk to use."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import streamwise as sw
from streamwise.export import NotExportableError, onnx
from tests.convert.zoo import codecs, convnext, enhancement, tcn, vocoders
from tests.convert.zoo.packages import Missing
from tests.export.exported import Exported, assert_onnx_streams_like_offline, exported
from tests.strategies import chunkings

# name: (zoo factory, example shape [1, C, T], sw.convert keyword arguments, input frames a
# chunk, rounded down to a multiple of the converted model's period)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], dict[str, object], int]] = {
    "hifigan": (vocoders.hifigan_plain, (1, 8, 40), {}, 8),
    "melgan_causal": (vocoders.melgan_causal, (1, 8, 40), {}, 8),
    "encodec_encoder_causal": (codecs.encodec_encoder_causal, (1, 1, 320),
                               codecs.SHORT_ENCODER, 8),
    "tcn_causal": (tcn.tcn_causal, (1, 4, 200), {}, 8),
    "vocos_backbone": (convnext.vocos_backbone, (1, 8, 64), {}, 8),
    "denoiser_causal": (enhancement.denoiser_causal, (1, 1, 512), {}, 64),
}
_converted: dict[str, sw.StreamingModule] = {}


def _convert(name: str) -> sw.StreamingModule:
    """The zoo model converted in float32, once per session (its period fixes the chunk)."""
    if name not in _converted:
        factory, shape, kwargs, _ = CASES[name]
        try:
            model = factory().float().eval()
        except Missing as e:
            pytest.skip(str(e))
        example = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        _converted[name] = sw.convert(model, example, -1, seed=0, **kwargs)
    return _converted[name]


def _exported(name: str) -> Exported:
    model = _convert(name)
    chunk = model.period * max(1, CASES[name][3] // model.period)
    assert chunk % model.period == 0
    return exported(f"converted_{name}", lambda: model, chunk, torch.randn(CASES[name][1]))


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_exported_converted_model_streams_like_offline(name, data):
    e = _exported(name)
    assert e.contract.chunk % e.model.period == 0
    batch = data.draw(st.integers(1, 3), label="batch")
    length = e.length(data.draw(st.integers(0, 3), label="chunks after start"))
    x = e.input(batch, length, seed=data.draw(st.integers(0, 9), label="seed"))
    y = assert_onnx_streams_like_offline(e, x, data.draw(chunkings(length), label="sizes"))
    assert y.shape[0] == batch


def test_denoiser_at_a_chunk_shorter_than_its_phase_is_refused_naming_the_chunk(tmp_path):
    model = _convert("denoiser_causal")
    assert model.period == 1
    with pytest.raises(NotExportableError, match=r"repeats only every 8 chunks of 8 frames.*"
                                                 r"export with chunk=64"):
        onnx(model, tmp_path / "denoiser.onnx", chunk=8, example=torch.randn(1, 1, 512))
    assert list(tmp_path.iterdir()) == []
