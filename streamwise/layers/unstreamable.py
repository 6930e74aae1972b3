"""Layers that cannot run on a stream exactly: constructing one raises a clear error.

Each of these needs the whole sequence before it can emit its first frame (statistics over time,
pooling over all of time, a backward pass over time).  The error says why and what to use instead.
"""

from __future__ import annotations

from typing import Any, NoReturn

from streamwise.core.protocol import NotStreamableError

_WHY = {
    "GroupNorm": (
        "normalizes over time as well as channels, so every output depends on the whole sequence",
        "sw.LayerNorm (over channels per frame) or sw.BatchNorm1d in eval mode; or wrap the "
        "model in a window adapter and accept a measured error",
    ),
    "InstanceNorm1d": (
        "normalizes each channel by its mean and variance over the whole sequence",
        "sw.LayerNorm over channels, or sw.BatchNorm1d in eval mode",
    ),
    "InstanceNorm2d": (
        "normalizes each channel by its statistics over the whole time axis",
        "sw.BatchNorm2d in eval mode, or sw.LayerNorm over channels",
    ),
    "AdaptiveAvgPool1d": (
        "pools over a fraction of the whole sequence, whose length a stream never knows",
        "a causal running average (sw.AvgPool1d with a fixed kernel) or pooling per window",
    ),
    "AdaptiveMaxPool1d": (
        "pools over a fraction of the whole sequence, whose length a stream never knows",
        "sw.MaxPool1d with a fixed kernel and stride",
    ),
    "GlobalAvgPool": (
        "averages over all of time, so its single output needs the end of the stream",
        "a running (prefix) mean, or sw.AvgPool1d over a fixed window",
    ),
}


def _not_streamable(name: str) -> type:
    why, instead = _WHY[name]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotStreamableError(f"{name} cannot stream exactly: it {why}. Use {instead}.")

    return type(name, (), {"__init__": __init__, "__doc__": f"Not streamable: {why}."})


GroupNorm = _not_streamable("GroupNorm")
InstanceNorm1d = _not_streamable("InstanceNorm1d")
InstanceNorm2d = _not_streamable("InstanceNorm2d")
AdaptiveAvgPool1d = _not_streamable("AdaptiveAvgPool1d")
AdaptiveMaxPool1d = _not_streamable("AdaptiveMaxPool1d")
GlobalAvgPool = _not_streamable("GlobalAvgPool")
