"""Attention with Window / Sinks / Chunked caches and the Conformer encoder exported to ONNX
stream like their offline forward, from the first frame to the last and far past the start (the
exported graph's positions come from the cache, not a Python clock); content-based caches
(Retrieve, Merge) are refused by name."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamwise.attention import Chunked, Sinks, StreamingAttention, Window
from streamwise.export import NotExportableError, onnx
from streamwise.models.conformer import conformer_encoder
from tests.export.exported import assert_onnx_streams_like_offline, exported
from tests.strategies import chunkings


def _att(cache, encoding="rope", layout="bct"):
    return lambda: StreamingAttention(16, 2, cache=cache(), encoding=encoding, layout=layout)


CASES = {  # name: (factory, chunk, example shape)
    "window_rope": (_att(lambda: Window(6)), 4, (1, 16, 12)),
    "window_alibi_btc": (_att(lambda: Window(5), "alibi", "btc"), 3, (1, 12, 16)),
    "sinks_rope": (_att(lambda: Sinks(2, 6)), 4, (1, 16, 12)),
    "sinks_absolute": (_att(lambda: Sinks(3, 5, positions="absolute")), 2, (1, 16, 12)),
    "chunked_rope": (_att(lambda: Chunked(4, 2)), 4, (1, 16, 12)),
    "chunked_none_chunk8": (_att(lambda: Chunked(4, 1), "none"), 8, (1, 16, 12)),
    "conformer": (lambda: conformer_encoder(6, dim=16, heads=2, layers=2, chunk=4, left_chunks=2,
                                            kernel=5), 4, (1, 6, 12)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_exported_attention_streams_like_offline(name, data):
    build, chunk, shape = CASES[name]
    e = exported(name, build, chunk, torch.randn(shape))
    batch = data.draw(st.integers(1, 3), label="batch")
    # up to 12 chunks past the start: the sinks stay, the window slides, positions go on
    length = e.length(data.draw(st.sampled_from([0, 1, 3, 12]), label="chunks after start"))
    x = e.input(batch, length, seed=data.draw(st.integers(0, 9)))
    assert_onnx_streams_like_offline(e, x, data.draw(chunkings(length), label="sizes"))


@pytest.mark.parametrize("policy", ["Retrieve", "Merge"])
def test_content_based_caches_are_refused_by_name(policy, tmp_path):
    from streamwise.attention import cache as caches

    make = {"Retrieve": lambda: caches.Retrieve(1, page=2, window=4, n_sink=1),
            "Merge": lambda: caches.Merge(0.5, max_entries=6, approximate=True)}[policy]
    m = StreamingAttention(16, 2, cache=make(), layout="bct")
    with pytest.raises(NotExportableError, match=policy):
        onnx(m, tmp_path / "m.onnx", chunk=2, example=torch.randn(1, 16, 8))
    assert list(tmp_path.iterdir()) == []
