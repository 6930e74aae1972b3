"""The check that a stream's state keeps what ``state_spec`` declares, chunk after chunk."""

from __future__ import annotations

import torch

from streamwise.core.protocol import StreamingModule
from streamwise.core.state import conforms


def assert_state_keeps_its_declaration(module: StreamingModule, x: torch.Tensor,
                                       sizes: list[int], in_channels: int | None = None) -> None:
    """Fresh and after each chunk of ``sizes``, the state conforms to ``module.state_spec``
    (leaf paths, ranks, batch sizes, dtypes, clocks as ints)."""
    spec = module.state_spec(in_channels)
    batch, axis = x.shape[0], module.time_axis
    stream = module.stream(batch, dtype=x.dtype)
    assert conforms(spec, stream.state, batch, x.dtype, in_channels) == []
    pos = 0
    for n in sizes:
        stream.push(x.narrow(axis, pos, n))
        pos += n
        assert conforms(spec, stream.state, batch, x.dtype, in_channels) == [], f"after {pos}"
