"""``streamwise serve --runtime onnx``: sessions stepped through onnxruntime with stacked states.

A served model is exported once (``streamwise.export.onnx``) into a cache folder keyed by its
weights, or loaded from a given ``.onnx`` file.  Each session is an ``OnnxStream`` of one row;
each tick, ``OnnxBatcher.step`` appends every session's chunk to its buffer, then runs rounds:
the sessions whose buffer holds their prologue run ``start`` together, those already started
with a full chunk run ``step`` together (states stacked on their batch axes, rows never mix),
until no buffer holds a full chunk.  Nothing of a session changes unless the whole group
succeeded, so a failing call leaves every session as it was.  Checkpoints are
``OnnxStream.snapshot`` bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from streamwise.core.protocol import StreamingModule
from streamwise.runtime.onnx_stream import (
    Arrays,
    OnnxModel,
    OnnxStream,
    m_shape,
    stack_states,
    unstack_state,
)

log = logging.getLogger("streamwise.serve")

DEFAULT_CACHE = Path(os.environ.get("STREAMWISE_ONNX_CACHE",
                                    Path.home() / ".cache" / "streamwise" / "onnx"))


def default_chunk(model: StreamingModule, target: int = 0) -> int:
    """The export chunk: the smallest multiple of the model's period that is >= ``target``
    (the period itself by default: the end of a stream with lookahead is exact only for
    lengths that are multiples of the chunk)."""
    p = int(model.period)
    return max(1, -(-max(target, 1) // p)) * p


def weights_key(model: StreamingModule, chunk: int) -> str:
    """A hash of the model's structure and weight values (a cache hit is the same model)."""
    import streamwise

    h = hashlib.sha256(repr(model).encode())
    h.update(f"chunk={chunk};torch={torch.__version__};"
             f"streamwise={getattr(streamwise, '__version__', '')}".encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def export_cached(name: str, model: StreamingModule, cache: str | Path = DEFAULT_CACHE,
                  chunk: int | None = None) -> Path:
    """The step file of ``model``'s export in ``cache``, exporting it first on a miss."""
    from streamwise.export import onnx as export_onnx

    chunk = chunk or default_chunk(model)
    if chunk % int(model.period):
        raise ValueError(f"--onnx-chunk {chunk} is not a multiple of {name}'s period "
                         f"{model.period}")
    folder = Path(cache) / f"{name}-{weights_key(model, chunk)}"
    path = folder / f"{name}.onnx"
    if path.exists():
        log.warning("streamwise serve: %s: cached ONNX export %s (chunk %d)", name, path, chunk)
        return path
    folder.mkdir(parents=True, exist_ok=True)
    log.warning("streamwise serve: %s: exporting to %s (chunk %d = %d x period %d)", name,
                path, chunk, chunk // int(model.period), model.period)
    export_onnx(model.eval(), path, chunk)
    return path


class ServedOnnxStream(OnnxStream):
    """One session's ``OnnxStream`` (one row) with the serve ``Stream`` interface."""

    def __init__(self, model: OnnxModel, batch_size: int = 1) -> None:
        super().__init__(model, batch_size)
        self._torch = True  # the server pushes torch tensors and expects them back

    def snapshot(self, state: Any = None) -> bytes:
        return super().snapshot()

    def check(self, x: Any) -> np.ndarray:
        return super().check(x)


class OnnxServed:
    """A model as the server sees it under ``--runtime onnx``: metadata, new and restored
    streams.  ``source``: the torch model it was exported from (None: loaded from a file)."""

    runtime = "onnx"

    def __init__(self, onnx: OnnxModel, source: StreamingModule | None = None) -> None:
        self.onnx, self.source = onnx, source
        c = onnx.contract
        self.period = int(c["period"])
        self.delay = Fraction(c["delay"])
        self.stride = Fraction(c["stride"])
        self.receptive_field = int(c["receptive_field"])
        self.fixed_in_channels = int(np.prod(onnx.frame)) if onnx.frame else 1
        self.parameters = (sum(p.numel() for p in source.parameters())
                           if source is not None else None)

    @classmethod
    def load(cls, path: str | Path, source: StreamingModule | None = None) -> OnnxServed:
        return cls(OnnxModel(path), source)

    def eval(self) -> OnnxServed:
        return self

    def stream(self, batch_size: int = 1) -> ServedOnnxStream:
        return ServedOnnxStream(self.onnx, batch_size)

    def restore(self, blob: bytes) -> ServedOnnxStream:
        s = ServedOnnxStream.restore(self.onnx, blob)
        assert isinstance(s, ServedOnnxStream)
        s._torch = True
        return s

    def close_problem(self, stream: ServedOnnxStream) -> str | None:
        """Why ``stream`` cannot end exactly now (None: it can)."""
        m = self.onnx
        if stream.state is None and not m.causal:
            return (f"this stream has {stream.frames_in} frames; the ONNX export starts with "
                    f"{m.prologue} (its prologue): push at least that many before closing")
        left = stream.pending.shape[m.time_axis % stream.pending.ndim]
        if left and not m.causal:
            return (f"{left} frames are left over a multiple of the export's chunk ({m.chunk}); "
                    f"this model has lookahead, so under --runtime onnx a stream ends exactly "
                    f"only after a multiple of {m.chunk} frames past its first {m.prologue} "
                    "(pad the stream)")
        return None


class OnnxBatcher:
    """``StateBatcher``'s interface for ``OnnxServed`` sessions (the scheduler calls it)."""

    def __init__(self, served: OnnxServed) -> None:
        self.served, self.model = served, served.onnx
        self.last_calls: list[int] = []  # rows of each onnxruntime call in the last ``step``

    def plan(self, streams: Sequence[ServedOnnxStream], chunks: Sequence[Tensor],
             max_batch: int | None = None) -> list[list[int]]:
        """Every session of a model stacks with every other (groups of ``max_batch``)."""
        cap = max_batch or len(streams) or 1
        idx = list(range(len(streams)))
        return [idx[i : i + cap] for i in range(0, len(idx), cap)]

    def row_state(self, stream: ServedOnnxStream) -> None:
        return None  # the stream holds its own state (snapshot reads it)

    def materialize(self, stream: ServedOnnxStream) -> None:
        return None

    def step(self, streams: Sequence[ServedOnnxStream], chunks: Sequence[Tensor]
             ) -> list[Tensor]:
        """Push ``chunks`` (one per stream) through stacked ``start``/``step`` calls."""
        m = self.model
        xs = [s.check(c) for s, c in zip(streams, chunks)]
        axis = m.time_axis % xs[0].ndim
        pend = [np.concatenate([s.pending, x], axis) for s, x in zip(streams, xs)]
        states = [s.state for s in streams]
        done = [0] * len(streams)
        ys: list[list[np.ndarray]] = [[] for _ in streams]
        self.last_calls = []
        held: tuple[list[int], Arrays] | None = None  # the last call's stacked state, its rows

        def release() -> None:  # give the rows of ``held`` their own states again
            nonlocal held
            if held is not None:
                for i, st in zip(held[0], unstack_state(m, held[1], [1] * len(held[0]))):
                    states[i] = st
                held = None

        while True:
            starters = [i for i, st in enumerate(states)
                        if st is None and pend[i].shape[axis] - done[i] >= m.prologue]
            steppers = [i for i, st in enumerate(states)
                        if st is not None and pend[i].shape[axis] - done[i] >= m.chunk]
            if not starters and not steppers:
                break
            for rows, n, start in ((starters, m.prologue, True), (steppers, m.chunk, False)):
                if not rows:
                    continue
                x = np.ascontiguousarray(np.concatenate(
                    [_take(pend[i], axis, done[i], done[i] + n) for i in rows], 0))
                if start:
                    y, new = m.start(x)
                else:
                    if held is not None and held[0] == rows:  # the same rows as the last call
                        stacked = held[1]
                    else:
                        release()
                        stacked = stack_states(m, [st for i in rows
                                                   if (st := states[i]) is not None])
                    y, new = m.step(x, stacked)
                self.last_calls.append(len(rows))
                if held is None or held[0] != rows:
                    release()
                held = (rows, new)
                for k, i in enumerate(rows):
                    states[i] = _HELD  # its state is row k of ``held``
                    ys[i].append(y[k : k + 1])
                    done[i] += n
        release()
        outs = []
        for s, x, p, st, d, y in zip(streams, xs, pend, states, done, ys):  # commit
            s.state, s.pending = st, _take(p, axis, d, p.shape[axis]).copy()
            s.frames_in += x.shape[axis]
            out = self._cat(y, s.batch_size)
            s.frames_out += out.shape[m.out_time_axis % out.ndim]
            outs.append(torch.from_numpy(np.ascontiguousarray(out)))
        return outs

    def _cat(self, ys: list[np.ndarray], batch: int) -> np.ndarray:
        m = self.model
        if ys:
            return ys[0] if len(ys) == 1 else np.concatenate(ys, m.out_time_axis % ys[0].ndim)
        return _empty(m, batch)


def _empty(m: OnnxModel, batch: int) -> np.ndarray:
    shape = [batch, *m.out_frame]
    shape.insert(m.out_time_axis % (len(shape) + 1), 0)
    return np.zeros(shape, m.dtype)


_HELD: Arrays = {}  # placeholder: the state is a row of the stacked ``held`` state


def _take(a: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(lo, hi)
    return a[tuple(index)]


def onnx_models(models: dict[str, StreamingModule], cache: str | Path = DEFAULT_CACHE,
                files: dict[str, str] | None = None, chunk: int | None = None
                ) -> dict[str, OnnxServed]:
    """``models`` exported (or found in ``cache``) and loaded for onnxruntime; ``files``:
    name -> ``.onnx`` path, served as given (a model only there is served without torch)."""
    files = files or {}
    out: dict[str, OnnxServed] = {}
    for name, path in files.items():
        out[name] = OnnxServed.load(path, models.get(name))
        log.warning("streamwise serve: %s: ONNX file %s (chunk %d)", name, path,
                    out[name].onnx.chunk)
    for name, model in models.items():
        if name not in out:
            out[name] = OnnxServed.load(export_cached(name, model, cache, chunk), model)
    return out


__all__ = ["OnnxBatcher", "OnnxServed", "ServedOnnxStream", "export_cached", "m_shape",
           "onnx_models"]
