"""The probe inputs: the example, made longer, given one more batch row, and at extra lengths.

The model runs on each of them while it is traced and analysed: an axis whose size follows the
length is time, one that follows the batch is the batch axis, and a value computed from the
length that is the same at every extra length is a constant (``length_trace``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from streamwise.convert.length_trace import LENGTH_OFFSETS

#: how much longer than the example the second probe is: a multiple of every usual stride
PROBE_EXTRA = 2**6 * 3 * 5 * 7


def _more(example: Tensor, seed: int) -> Callable[[list[int]], Tensor]:
    """Random values like the example's, of any shape (seeded)."""
    gen = torch.Generator().manual_seed(seed)

    def more(shape: list[int]) -> Tensor:
        if example.is_floating_point():
            scale = float(example.std()) if example.numel() > 1 else 1.0
            out = torch.randn(shape, generator=gen, dtype=example.dtype) * max(scale, 1e-3)
        else:
            hi = int(example.max()) + 1 if example.numel() else 2
            out = torch.randint(0, hi, shape, generator=gen).to(example.dtype)
        return out.to(example.device)

    return more


def length_probes(example: Tensor, time_axis: int, min_length: int | None = None) -> list[Tensor]:
    """The example made longer by each of ``LENGTH_OFFSETS`` frames (the tracer checks that a
    value computed from the length is the same at all of them before it fixes it), and, given
    the shortest length a stream will have, inputs of that length and a few frames more."""
    more = _more(example, 1)
    out = []
    n0 = example.shape[time_axis]
    lengths = [n0 + n for n in LENGTH_OFFSETS]
    if min_length is not None:
        lengths += [min_length + n for n in range(4)]
    for n in lengths:
        if n <= n0:
            out.append(example.narrow(time_axis, 0, n))
            continue
        shape = list(example.shape)
        shape[time_axis] = n - n0
        out.append(torch.cat([example, more(shape)], time_axis))
    return out


def probe_inputs(example: Tensor, time_axis: int, extra: int) -> list[Tensor]:
    """The example, a longer one that starts like it, and one with an extra batch row."""
    more = _more(example, 0)
    shape = list(example.shape)
    shape[time_axis] = extra
    longer = torch.cat([example, more(shape)], time_axis)
    shape = list(example.shape)
    shape[0] = 1
    wider = torch.cat([example, more(shape)], 0)
    return [example, longer, wider]
