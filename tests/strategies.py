"""Shared hypothesis strategies and the checks every streaming test uses: streamed equals
offline, and the state keeps its declaration."""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor

from streamwise.core.protocol import StreamingModule
from streamwise.core.state import conforms
from streamwise.core.stream import Stream
from streamwise.core.verify import stream_chunks


@st.composite
def chunkings(draw: st.DrawFn, length: int) -> list[int]:
    """Irregular chunk sizes summing to ``length``; repeated cuts give 0-size chunks."""
    cuts = sorted(draw(st.lists(st.integers(0, length), max_size=14)))
    if draw(st.booleans()):  # sometimes a run of 1-frame chunks at a random place
        a = draw(st.integers(0, length))
        cuts = sorted(cuts + list(range(a, min(length, a + 6))))
    bounds = [0, *cuts, length]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def assert_streams_like_offline(
    model: StreamingModule, x: Tensor, sizes: list[int], rtol: float | None = None
) -> Tensor:
    """Stream ``x`` in ``sizes`` chunks and check it equals ``model(x)`` to float tolerance."""
    model.eval()
    with torch.inference_mode():
        ref = model(x)
    y, _ = stream_chunks(model, x, sizes)
    assert y.shape == ref.shape, f"streamed {tuple(y.shape)} vs offline {tuple(ref.shape)}"
    tol = rtol if rtol is not None else (1e-10 if x.dtype == torch.float64 else 1e-5)
    scale = max(float(ref.abs().max()) if ref.numel() else 0.0, 1.0)
    err = float((y - ref).abs().max()) if y.numel() else 0.0
    assert err <= tol * scale, f"max abs error {err:.3e} > {tol:g} x scale {scale:.3g}"
    return y


def assert_state_keeps_its_declaration(module: StreamingModule, x: Tensor, sizes: list[int],
                                       in_channels: int | None = None) -> Stream:
    """Fresh and after each chunk of ``sizes``, the state conforms to ``module.state_spec``
    (leaf paths, ranks, batch sizes, dtypes, bounds, clocks as ints); returns the stream."""
    spec = module.state_spec(in_channels)
    batch, axis = x.shape[0], module.time_axis
    stream = module.stream(batch, dtype=x.dtype)
    assert conforms(spec, stream.state, batch, x.dtype, in_channels) == []
    pos = 0
    for n in sizes:
        stream.push(x.narrow(axis, pos, n))
        pos += n
        problems = conforms(spec, stream.state, batch, x.dtype, in_channels)
        assert problems == [], f"after {pos} frames: {problems}"
    return stream
