"""Real models rebuilt in plain torch, converted with sw.convert and exported to ONNX: silero-vad
(chunk 512) and PESTO (one 10 ms hop), driven by OnnxStream over random chunkings and batches,
equal to the torch offline forward to 1e-5 of the output's scale."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamwise as sw
from tests.export.exported import assert_onnx_streams_like_offline, exported
from tests.pretrained.examples import load_example
from tests.strategies import chunkings


def _silero() -> sw.StreamingModule:
    return sw.convert(load_example("silero_vad_torch").build_model(), torch.zeros(1, 1, 16000))


def _pesto() -> sw.StreamingModule:
    ex = load_example("pesto_pitch")
    return sw.convert(ex.build_model(), torch.randn(1, 1, 20 * _hop()))


def _hop() -> int:
    ex = load_example("pesto_pitch")
    return int(ex.STEP_MS * ex.RATE / 1000 + 0.5)


CASES = {"silero_vad": (_silero, lambda: 512), "pesto": (_pesto, _hop)}


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_exported_pretrained_streams_like_offline(name, data):
    build, chunk = CASES[name]
    n = chunk()
    e = exported(name, build, n, torch.zeros(1, 1, 4 * n))
    batch = data.draw(st.integers(1, 2), label="batch")
    length = e.length(data.draw(st.integers(0, 3), label="chunks after start"))
    x = e.input(batch, length, seed=data.draw(st.integers(0, 9)))
    assert_onnx_streams_like_offline(e, x, data.draw(chunkings(length), label="sizes"))
