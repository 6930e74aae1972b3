"""What a chunk must be before a session takes it: a finite float32 ``[C, T]`` within limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from streamwise.serve.config import ServeConfig
from streamwise.serve.errors import ServeError


def checked_chunk(data: Any, channels: int, config: ServeConfig,
                  stream_check: Callable[[Tensor], Any]) -> Tensor:
    """``data`` as a ``[1, C, T]`` tensor, or ``ServeError`` naming what was expected.

    ``stream_check`` is the session stream's own check (chunk length and phase rules)."""
    arr = data.numpy() if isinstance(data, Tensor) else data
    if not isinstance(arr, np.ndarray):
        raise ServeError("bad_shape", f"expected a [{channels}, T] float32 array")
    if arr.dtype != np.float32:
        raise ServeError("bad_dtype", f"expected float32 samples, got {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != channels:
        raise ServeError("bad_shape", f"expected a chunk of shape [{channels}, T] "
                         f"(channels, frames), got {list(arr.shape)}")
    if arr.shape[1] > config.max_chunk_frames:
        raise ServeError("too_large", f"chunk of {arr.shape[1]} frames exceeds the limit "
                         f"of {config.max_chunk_frames}; split it")
    if config.check_finite and not np.isfinite(arr).all():
        raise ServeError("non_finite", "chunk contains NaN or inf; it was not consumed")
    x = torch.from_numpy(np.array(arr, dtype=np.float32))[None]
    try:
        stream_check(x)
    except ValueError as e:
        raise ServeError("bad_shape", str(e)) from e
    return x
