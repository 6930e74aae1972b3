"""Layers that cannot run on a stream exactly: constructing one raises a clear error.

Each of these needs the whole sequence before it can emit its first frame (statistics over time,
pooling over all of time, a backward pass over time).  The error says why and what to use instead,
from ``CANNOT_STREAM``, the one table of such advice (the converter reads it too).
"""

from __future__ import annotations

from typing import Any, NoReturn

from streamwise.core.protocol import NotStreamableError

#: the advice for ops that cannot stream exactly, so that a window adapter serves instead
WINDOW_FIX = "or stream this part with sw.WindowStream (overlapping windows, error measured)"

#: why an op (by module or function name) cannot stream, and what to do instead; read by the
#: layers below and by the converter (``sw.convert``) when it finds one of these in a model
CANNOT_STREAM: dict[str, tuple[str, str]] = {
    "GroupNorm": (
        "normalizes over time as well as channels, so every output depends on the whole sequence",
        "use LayerNorm over channels (sw.LayerNorm) or sw.BatchNorm1d in eval mode, " + WINDOW_FIX,
    ),
    "InstanceNorm1d": (
        "normalizes each channel by its mean and variance over the whole sequence",
        "use LayerNorm over channels (sw.LayerNorm), sw.BatchNorm1d in eval mode, or "
        "track_running_stats=True (eval uses running statistics), " + WINDOW_FIX,
    ),
    "InstanceNorm2d": (
        "normalizes each channel by its statistics over the whole time axis",
        "use sw.BatchNorm2d in eval mode, or LayerNorm over channels, " + WINDOW_FIX,
    ),
    "LayerNorm": ("normalizes over the time axis", "normalize over channels only " + WINDOW_FIX),
    "AdaptiveAvgPool1d": (
        "pools over a fraction of the whole sequence, whose length a stream never knows",
        "use a fixed-size pool (sw.AvgPool1d) or a causal running average, " + WINDOW_FIX,
    ),
    "AdaptiveMaxPool1d": (
        "pools over a fraction of the whole sequence, whose length a stream never knows",
        "use a fixed-size pool (sw.MaxPool1d with a fixed kernel and stride), " + WINDOW_FIX,
    ),
    "GlobalAvgPool": (
        "averages over all of time, so its single output needs the end of the stream",
        "use a running (prefix) mean, or sw.AvgPool1d over a fixed window",
    ),
    "MultiheadAttention": ("attends over the whole sequence",
                           "use sw.StreamingAttention with a cache policy (causal, window, "
                           "chunked) " + WINDOW_FIX),
    "scaled_dot_product_attention": ("attends over the whole sequence",
                                     "use sw.StreamingAttention " + WINDOW_FIX),
    "Linear": ("mixes time frames (a Linear layer over the time axis)",
               "apply Linear over channels (time on another axis) " + WINDOW_FIX),
    "linear": ("mixes time frames (a linear map over the time axis)",
               "apply it over channels " + WINDOW_FIX),
    "flip": ("reverses time", WINDOW_FIX.removeprefix("or ")),
    "cumsum": ("accumulates over time", "use a streamwise recurrence " + WINDOW_FIX),
    "softmax": ("normalizes over time", "take the softmax over channels " + WINDOW_FIX),
    "conv_transpose1d": ("is a functional transposed conv",
                         "use nn.ConvTranspose1d (streamed by overlap-add)"),
    "ConvTranspose2d": ("is a 2-D transposed conv", "use nn.ConvTranspose1d over time"),
    "GlobalLayerNorm": (
        "reduces over time to a statistic of the whole sequence and applies it to every frame "
        "(as a global layer norm, gLN, does), so no frame can be output before the stream ends",
        "use a cumulative layer norm (statistics of the frames so far) or normalize over "
        "channels only (nn.LayerNorm on the channel axis), " + WINDOW_FIX,
    ),
    "DualPathRNN": (
        "runs within chunks of the sequence that a reshape folded into the batch axis (a "
        "dual-path model's intra-chunk RNN): the number of chunks, and so the batch, grows with "
        "the length",
        "keep time on an axis of its own (a unidirectional RNN over frames, or chunks processed "
        "along time), " + WINDOW_FIX,
    ),
    "RecursiveScriptModule": (
        "is a TorchScript module that mixes time frames: compiled, so the layers inside cannot "
        "be recognised and streamed",
        "convert the Python module before scripting it, " + WINDOW_FIX,
    ),
    "ScriptFunction": (
        "is a TorchScript function without Python source that mixes time frames",
        "script it from a .py file (the converter then traces its source), " + WINDOW_FIX,
    ),
    "Rearrange": ("rearranges time together with another axis (an einops group holding time)",
                  "keep time an axis of its own in the pattern, " + WINDOW_FIX),
    "rearrange": ("rearranges time together with another axis (an einops group holding time)",
                  "keep time an axis of its own in the pattern, " + WINDOW_FIX),
    "Reduce": ("reduces over time (an einops pattern without time in its output)",
               "reduce over channels only, " + WINDOW_FIX),
    "reduce": ("reduces over time (an einops pattern without time in its output)",
               "reduce over channels only, " + WINDOW_FIX),
    "arange": ("builds positions from the sequence length (they would restart at every chunk)",
               "use sw.StreamingAttention's positions, or pass positions as an input"),
}


def _not_streamable(name: str) -> type:
    why, fix = CANNOT_STREAM[name]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotStreamableError(f"{name} cannot stream exactly: it {why}; {fix}.")

    return type(name, (), {"__init__": __init__, "__doc__": f"Not streamable: {why}."})


GroupNorm = _not_streamable("GroupNorm")
InstanceNorm1d = _not_streamable("InstanceNorm1d")
InstanceNorm2d = _not_streamable("InstanceNorm2d")
AdaptiveAvgPool1d = _not_streamable("AdaptiveAvgPool1d")
AdaptiveMaxPool1d = _not_streamable("AdaptiveMaxPool1d")
GlobalAvgPool = _not_streamable("GlobalAvgPool")
