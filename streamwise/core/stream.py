"""``Stream``: a handle that holds a module's state so callers just push chunks.

Input is checked before it touches the state (shape, channels, dtype, device, optionally NaN/inf);
``step`` is pure, so a chunk that fails anywhere leaves the stream exactly as it was.
"""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

import torch
from torch import Tensor

from streamwise.core import codec
from streamwise.core.protocol import State, StreamingModule, param_dtype_device, tree_map

_SNAPSHOT_VERSION = 2


class StreamClosedError(RuntimeError, ValueError):
    """A chunk was pushed to a stream after ``close`` (a ValueError and a RuntimeError)."""


_FINGERPRINTS: weakref.WeakKeyDictionary[StreamingModule, str] = weakref.WeakKeyDictionary()


def model_fingerprint(model: StreamingModule) -> str:
    """Hash of a model's structure and parameter shapes: a snapshot restores only into its twin.

    Cached per model object (a module's structure does not change once streaming), so a server
    that checkpoints every chunk does not re-hash the model each time.
    """
    hit = _FINGERPRINTS.get(model)
    if hit is not None:
        return hit
    h = hashlib.sha256(repr(model).encode())
    for name, p in model.state_dict().items():
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype}".encode())
    _FINGERPRINTS[model] = h.hexdigest()[:16]
    return _FINGERPRINTS[model]


class Stream:
    """Streams ``batch_size`` rows through ``model`` in lockstep: ``push`` -> ``close``."""

    def __init__(
        self,
        model: StreamingModule,
        batch_size: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        check_finite: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.device, self.dtype = param_dtype_device(model, device, dtype)
        self.check_finite = check_finite
        self.state: State = model.init_state(batch_size, device=self.device, dtype=self.dtype)
        self.frames_in = 0  # input frames pushed (shared clock of all rows)
        self.frames_out = 0  # output frames returned
        self.closed = False
        # per-row output frame where that row's current stream begins (after a reset)
        self._row_start_out = torch.zeros(batch_size, dtype=torch.long)
        self._row_start_max = 0
        self._out_shape: tuple[int, ...] | None = None
        self._frame_shape: tuple[int, ...] | None = None  # non-time shape of the first chunk
        self._ndim, self._channels = model.in_ndim, model.fixed_in_channels  # checked per push
        self._axis = model.time_axis % (model.in_ndim or 3) if model.time_axis != -1 else -1
        self._out_axis = model.out_time_axis

    # -- pushing -------------------------------------------------------------------------------
    def push(self, x: Tensor) -> Tensor:
        """Feed one chunk (time on ``model.time_axis``, any length including 0); return the outputs
        now final."""
        self.check(x)  # refuses a closed stream too
        with torch.inference_mode():
            y, state = self.model.step(x, self.state)
        return self.advance(x, state, y)

    def advance(self, x: Tensor, state: State, y: Tensor) -> Tensor:
        """Adopt ``state`` and output ``y`` of stepping the checked chunk ``x`` (for batchers)."""
        self.state = state
        self.frames_in += x.shape[self._axis]
        self._frame_shape = self._non_time(tuple(x.shape))
        return self._finish(y)

    def close(self) -> Tensor:
        """End of stream: return what lookahead held back.  The stream takes no more chunks."""
        if self.closed:
            raise StreamClosedError("close() called twice")
        with torch.inference_mode():
            y, state = self.model.flush(self.state)
        self.state, self.closed = state, True
        return self._finish(self._shaped(y))

    def _shaped(self, y: Tensor | None) -> Tensor:
        """``flush``'s output, or where nothing was held back, an empty one shaped as outputs."""
        if y is None or not y.shape[self._out_axis]:
            shape = list(self._out_shape or (y.shape if y is not None else (self.batch_size, 0, 0)))
            shape[0], shape[self._out_axis] = self.batch_size, 0
            return torch.empty(*shape, device=self.device, dtype=self.dtype)
        return y

    def peek(self, state: State | None = None) -> Tensor:
        """What ``close`` would return now, without closing: the held-back frames answered with
        the input they have (chunked attention: the partial chunk).  A tentative view; ``flush``
        is pure, so the stream goes on exactly as if nobody had looked.  ``state``: this
        stream's state as held elsewhere (a batcher's resident row)."""
        if self.closed:
            raise StreamClosedError("peek() after close()")
        with torch.inference_mode():
            y, _ = self.model.flush(self.state if state is None else state)
        return self._shaped(y)

    def _non_time(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """``shape`` without its time axis."""
        axis = self._axis % len(shape)
        return shape[:axis] + shape[axis + 1 :]

    def _finish(self, y: Tensor) -> Tensor:
        n = y.shape[self._out_axis]
        self._out_shape = tuple(y.shape)
        if self._row_start_max > self.frames_out and n:  # rows restarted lately: zero their fill
            pos = torch.arange(self.frames_out, self.frames_out + n)
            before = pos[None, :] < self._row_start_out[:, None]
            y = y.masked_fill(before.view(y.shape[0], *([1] * (y.dim() - 2)), n).to(y.device), 0)
        self.frames_out += n
        return y

    def _expected(self) -> str:
        """The chunk shape this stream takes, for error messages."""
        ndim, ch = self._ndim, self._channels
        c = str(ch) if ch is not None else "C"
        if self._axis == 1:
            return f"[{self.batch_size}, T, {c}]"
        if ndim == 4:
            return f"[{self.batch_size}, {c}, F, T]"
        return f"[{self.batch_size}, {c}, T]" if ndim == 3 else f"[{self.batch_size}, {c}, ..., T]"

    def check(self, x: Tensor) -> None:
        """Raise a ValueError naming what was expected if ``x`` cannot be pushed; change nothing."""
        if self.closed:
            raise StreamClosedError("push() after close(): open a new stream with model.stream()")
        if not isinstance(x, Tensor):
            raise TypeError(f"push() takes a torch.Tensor, got {type(x).__name__}")
        ndim, ch, got = self._ndim, self._channels, tuple(x.shape)
        if ndim is not None and x.dim() != ndim:
            raise ValueError(f"expected a {ndim}-D chunk {self._expected()}, got {got}")
        if x.dim() < 2:
            raise ValueError(f"expected a chunk {self._expected()}, got {got}")
        if x.shape[0] != self.batch_size:
            raise ValueError(
                f"expected batch size {self.batch_size} in chunk {self._expected()}, got {got}"
            )
        if ch is not None and x.shape[-1 if self._axis == 1 else 1] != ch:
            raise ValueError(f"expected {ch} channels in chunk {self._expected()}, got {got}")
        if x.dtype != self.dtype:
            raise ValueError(f"expected dtype {self.dtype}, got {x.dtype} (cast with .to())")
        if x.device != self.device:
            raise ValueError(f"expected device {self.device}, got {x.device}")
        if self._frame_shape is not None and self._non_time(got) != self._frame_shape:
            raise ValueError(
                f"expected chunks shaped like the first one "
                f"({', '.join(map(str, self._frame_shape))} besides time), got {got}"
            )
        if self.check_finite and not bool(torch.isfinite(x).all()):
            raise ValueError("chunk contains NaN or inf (check_finite=True); it was not consumed")

    # -- per-row restart -----------------------------------------------------------------------
    def reset(self, mask: Tensor | list[bool]) -> None:
        """Restart the rows in ``mask`` as fresh streams; the other rows go on untouched.

        Rows share one clock, so a reset must fall on a multiple of ``model.period`` input frames.
        A restarted row's next outputs are zeros for the model's lookahead, then its new stream.
        """
        if self.closed:
            raise StreamClosedError("reset() after close()")
        m = torch.as_tensor(mask, dtype=torch.bool).flatten()
        if m.numel() != self.batch_size:
            raise ValueError(f"reset mask needs {self.batch_size} entries, got {m.numel()}")
        period = self.model.period
        early = [type(m).__name__ for m in self.model.modules()
                 if isinstance(m, StreamingModule) and m.emits_early]
        if early:
            raise ValueError(
                f"reset is not possible for this model: {early[0]} has more left padding than "
                "its kernel span, so it emits outputs ahead of their time, which a restarted "
                "row would already have received from its old stream; use a new stream instead"
            )
        if self.frames_in % period:
            raise ValueError(
                f"reset needs the stream at a multiple of {period} input frames (the model's "
                f"period); {self.frames_in} were pushed: push {period - self.frames_in % period} "
                "more frames first"
            )
        start_out = self.frames_in * self.model.stride
        self.state = self.model.reset_rows(self.state, m.to(self.device), self.frames_in)
        self._row_start_out = torch.where(m, int(start_out), self._row_start_out)
        self._row_start_max = int(self._row_start_out.max())

    # -- snapshots -----------------------------------------------------------------------------
    def snapshot(self, state: State | None = None) -> bytes:
        """Serialize the stream (state, clocks, model fingerprint) to bytes.

        ``state``: this stream's state as held elsewhere (a batcher's resident row), if not
        ``self.state``."""
        payload = {
            "version": _SNAPSHOT_VERSION,
            "fingerprint": model_fingerprint(self.model),
            "batch_size": self.batch_size,
            "dtype": str(self.dtype),
            "check_finite": self.check_finite,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "closed": self.closed,
            "row_start_out": self._row_start_out,
            "out_shape": list(self._out_shape) if self._out_shape else None,
            "frame_shape": list(self._frame_shape) if self._frame_shape else None,
            "state": self.state if state is None else state,
        }
        return codec.encode(payload)

    @classmethod
    def restore(
        cls, model: StreamingModule, blob: bytes, *, device: torch.device | str | None = None
    ) -> Stream:
        """Rebuild a stream from ``snapshot()`` bytes for ``model`` (the same architecture)."""
        try:
            payload: dict[str, Any] = codec.decode(blob)
        except Exception as e:  # noqa: BLE001 - any decoding failure is a bad blob
            raise ValueError(f"not a streamwise snapshot: {e}") from e
        if not isinstance(payload, dict) or payload.get("version") != _SNAPSHOT_VERSION:
            raise ValueError("not a streamwise snapshot (or from another version)")
        if payload["fingerprint"] != model_fingerprint(model):
            raise ValueError("snapshot was taken from a different model architecture")
        dtype = getattr(torch, payload["dtype"].replace("torch.", ""))
        s = cls(model, payload["batch_size"], device=device, dtype=dtype,
                check_finite=payload["check_finite"])
        s.state = tree_map(lambda t: t.to(s.device), payload["state"])
        s.frames_in, s.frames_out = payload["frames_in"], payload["frames_out"]
        s.closed = payload["closed"]
        s._row_start_out = payload["row_start_out"]
        s._row_start_max = int(s._row_start_out.max())
        s._out_shape = tuple(payload["out_shape"]) if payload["out_shape"] else None
        frame = payload.get("frame_shape")
        s._frame_shape = tuple(frame) if frame else None
        return s

    def state_nbytes(self) -> int:
        """Bytes the state holds right now."""
        from streamwise.core.protocol import tree_nbytes

        return tree_nbytes(self.state)
