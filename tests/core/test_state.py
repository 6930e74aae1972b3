"""Declared state: every kind of streaming module keeps what ``state_spec`` declares.

Fresh and after every chunk of random irregular chunkings (sizes 0 and 1 included), in batches
and float64, each leaf of the state is where the declaration says, with its rank, batch size,
dtype and bounded sizes; clocks stay ints; the bytes held never pass ``state_nbytes``.  Together
with ``test_batch`` (stacking and splitting from the declaration alone) this is what an exporter
relies on to name and shape a state it never stepped.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import streamwise as sw
from streamwise.attention import (
    Chunked,
    LinearAbsorb,
    Merge,
    Retrieve,
    Segments,
    SinkRefresh,
    Sinks,
    Window,
)
from streamwise.core.protocol import tree_nbytes
from streamwise.core.state import conforms, tensor
from streamwise.models.conformer import conformer_encoder
from streamwise.models.seanet import seanet
from streamwise.models.tiny_vad import tiny_vad
from tests.strategies import assert_state_keeps_its_declaration, chunkings


def _attention(cache) -> sw.StreamingModule:
    return sw.StreamingAttention(8, 2, cache=cache)


def _catalog() -> dict[str, sw.StreamingModule]:
    torch.manual_seed(0)
    return {
        "conv_same_dilated": sw.Conv1d(2, 3, 3, padding="same", dilation=2),
        "conv_strided_valid": sw.Conv1d(2, 3, 4, stride=3, padding="valid"),
        "conv_replicate": sw.Conv1d(2, 2, 5, padding=(3, 1), padding_mode="replicate"),
        "conv_transpose": sw.ConvTranspose1d(2, 3, 4, stride=2, padding=1),
        "pools": sw.Sequential(sw.MaxPool1d(3, stride=2, ceil_mode=True), sw.AvgPool1d(2)),
        "upsample": sw.Sequential(sw.Upsample(3), sw.Conv1d(2, 2, 3, padding="same")),
        "pointwise": sw.Sequential(sw.Linear(2, 4), sw.GELU(), sw.LayerNorm(4)),
        "residual_parallel": sw.Residual(sw.Sequential(sw.Conv1d(2, 2, 3, padding="same"),
                                                       sw.Tanh())),
        "lstm": sw.LSTM(2, 3, num_layers=2),
        "gru": sw.GRU(2, 3),
        "lmu": sw.LMU(2, 3, order=4, theta=10.0),
        "lmu_former": sw.lmu_former_block(2, 8, order=4, theta=8.0, patch=2),
        "aaren": sw.Aaren(2, heads=1),
        "lif": sw.LIF(2, 3),
        "delta_gru": sw.DeltaGRU(2, 3, resync=5),
        "delta_linear": sw.DeltaLinear(2, 3, threshold=0.1, resync=4),
        "mixer": sw.Sequential(sw.Conv1d(2, 3, 3, padding="same"),
                               sw.CausalPoolingMixer(3, segment=4)),
        "attn_full": _attention(None),
        "attn_window": _attention(Window(4)),
        "attn_sinks": _attention(Sinks(2, 5)),
        "attn_chunked": _attention(Chunked(3, 1)),
        "attn_segments": _attention(Segments({"a": Window(3), "b": Sinks(1, 4)})),
        "attn_merge": _attention(Merge(0.9, approximate=True)),
        "attn_linear_absorb": _attention(LinearAbsorb(3)),
        "attn_sink_refresh": _attention(SinkRefresh(2, 4)),
        "attn_retrieve": _attention(Retrieve(1, page=2, window=3, n_sink=1)),
        "conformer": conformer_encoder(4, dim=8, heads=2, layers=1, chunk=3, left_chunks=1,
                                       kernel=3),
        "seanet": seanet(base=4, bottleneck=8, seed=0),
        "tiny_vad": tiny_vad(hidden=8),
    }


CATALOG = _catalog()


def _input(m: sw.StreamingModule, batch: int, length: int) -> torch.Tensor:
    ch = m.fixed_in_channels or 2
    shape = (batch, length, ch) if m.time_axis == 1 else (batch, ch, length)
    return torch.randn(*shape, dtype=torch.float64)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(CATALOG)), batch=st.integers(1, 2), data=st.data())
def test_state_keeps_its_declaration_under_random_chunkings(name, batch, data):
    model = copy.deepcopy(CATALOG[name]).double().eval()
    length = data.draw(st.integers(0, 40), label="length")
    sizes = data.draw(chunkings(length), label="sizes")
    x = _input(model, batch, length)
    with torch.inference_mode():
        stream = assert_state_keeps_its_declaration(model, x, sizes)
    channels = x.shape[1 if model.time_axis == -1 else 2]
    bound = model.state_nbytes(batch, torch.float64, channels)  # 0: grows without bound
    held = tree_nbytes(stream.state)
    assert not bound or held <= bound, f"{held} bytes held, declared bound {bound}"


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_module_declares_a_spec_that_builds_its_initial_state(name):
    model = CATALOG[name]
    spec = model.state_spec(model.fixed_in_channels or 2)
    state = model.init_state(2, dtype=torch.float64)
    assert conforms(spec, state, 2, torch.float64, model.fixed_in_channels or 2) == []


def test_conforms_reports_what_breaks_a_declaration():
    """The check can fail: a missing leaf, a wrong dtype, a wrong batch size are each named."""
    spec = {"buf": tensor("B", 3, 4), "t": sw.core.state.clock()}
    good = {"buf": torch.zeros(2, 3, 4), "t": 0}
    assert conforms(spec, good, 2, torch.float32) == []
    assert "paths differ" in conforms(spec, {"buf": good["buf"]}, 2, torch.float32)[0]
    assert "dtype" in conforms(spec, {**good, "buf": good["buf"].double()}, 2, torch.float32)[0]
    assert "axis 0 is 2" in conforms(spec, good, 3, torch.float32)[0]
    assert "must be an int" in conforms(spec, {**good, "t": torch.tensor(0)}, 2,
                                        torch.float32)[0]
