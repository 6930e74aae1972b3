"""What a client learns about a served model: channels, timing, size, runtime, labels."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from streamwise.core.protocol import StreamingModule
from streamwise.serve.onnx_runtime import OnnxServed


def describe(name: str, m: StreamingModule | OnnxServed, sample_rate: int | None
             ) -> dict[str, Any]:
    """The ``/v1/models`` entry of model ``name`` (torch or ONNX-served)."""
    info: dict[str, Any] = {
        "name": name, "channels": m.fixed_in_channels or 1, "period": m.period,
        "delay_frames": float(m.delay), "stride": str(Fraction(m.stride)),
        "receptive_field": m.receptive_field, "sample_rate": sample_rate,
        "parameters": m.parameters if isinstance(m, OnnxServed) else
        sum(p.numel() for p in m.parameters()), "runtime": "torch",
    }
    if isinstance(m, OnnxServed):
        info.update(runtime="onnx", chunk=m.onnx.chunk, prologue=m.onnx.prologue)
    labels = getattr(m, "labels", None)
    if labels is not None:
        info["labels"] = list(labels)
    return info
