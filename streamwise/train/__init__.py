"""Training utilities for long streams: exact backpropagation along the sequence, chunk by
chunk (``stream_backward``)."""

from streamwise.train.stream_backward import stream_backward

__all__ = ["stream_backward"]
