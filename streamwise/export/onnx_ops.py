"""ONNX functions for ops torch 2.13's exporter has none for, written in our graph, not torch's.

``torch.onnx.export(dynamo=True)`` in torch 2.13 has no function for ``prims.hypot`` (what
``torch.hypot`` becomes after decomposition, e.g. a spectrogram's magnitude in PESTO): the
export fails with "No ONNX function found for prims.hypot".  Each entry maps the op to
onnxscript ops of the same value; ``TABLE`` goes to the exporter's ``custom_translation_table``.
"""

from __future__ import annotations

from typing import Any

import torch


def _hypot(a: Any, b: Any) -> Any:
    """``sqrt(a^2 + b^2)``: within an ulp of hypot where neither square overflows (|x| < 1e19
    in float32); audio features are far below that."""
    from onnxscript import opset18 as op

    return op.Sqrt(op.Add(op.Mul(a, a), op.Mul(b, b)))


def table() -> dict[Any, Any]:
    """The custom translation table for ``torch.onnx.export``."""
    return {torch.ops.prims.hypot.default: _hypot, torch.ops.aten.hypot.default: _hypot}
