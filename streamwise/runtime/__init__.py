"""Runtimes for exported streams: ``OnnxStream`` over onnxruntime (numpy only, no torch)."""

from streamwise.runtime.onnx_stream import (
    OnnxModel,
    OnnxStream,
    StreamClosedError,
    stack_states,
    unstack_state,
)

__all__ = ["OnnxModel", "OnnxStream", "StreamClosedError", "stack_states", "unstack_state"]
