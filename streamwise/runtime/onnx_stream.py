"""``OnnxStream``: the ``Stream`` interface over files written by ``streamwise.export.onnx``.

Chunks of any size are buffered to the export's chunk; the first ``prologue`` frames go through
the ``start`` file, each next ``chunk`` through ``step``, and ``close`` runs ``flush``.  Rows of a
batch never mix in the exported programs, so states of separate streams stack along their batch
axis into one call (``stack_states`` / ``unstack_state``, sherpa-onnx's StackStates idea) and a
row restarts on its own (``reset``: the restarted rows go through ``start`` again on their own,
and their state rows replace the old ones; ``row_restart.py``).  Only numpy and onnxruntime are
needed; a torch tensor pushed in gives torch tensors out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from streamwise.runtime import array_blob
from streamwise.runtime.contract_file import read_contract, sibling
from streamwise.runtime.row_restart import Restart, held_back

Arrays = dict[str, np.ndarray]


def export_id(contract: dict[str, Any]) -> str:
    """What a snapshot must match to restore: the model's fingerprint and the export's layout
    (chunk, prologue, dtype, state shapes; not the file names)."""
    body = {k: v for k, v in contract.items() if k != "files"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


class StreamClosedError(RuntimeError, ValueError):
    """A chunk was pushed to a stream after ``close``."""


def session(path: str | Path, threads: int = 1) -> Any:
    """An onnxruntime session on ``threads`` threads (one by default: streams run side by side)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxModel:
    """The three sessions of an export and its contract, shared by every stream of it."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.path = Path(path)
        self.contract = read_contract(self.path)
        c = self.contract
        self.sessions = {k: session(sibling(self.path, k), threads) for k in ("start", "step",
                                                                               "flush")}
        self.read(c)

    def read(self, c: dict[str, Any]) -> None:
        """The attributes streams use, from the contract ``c`` (shared with other runtimes)."""
        self.names = [s["name"] for s in c["state"]]
        self.axes = {s["name"]: s["batch_axis"] for s in c["state"]}
        self.row_size = {s["name"]: 1 if s["batch_axis"] is None
                         else int(s["shape"][s["batch_axis"]]) for s in c["state"]}
        self.chunk, self.prologue = int(c["chunk"]), int(c["prologue"])
        self.time_axis, self.out_time_axis = int(c["time_axis"]), int(c["out_time_axis"])
        self.dtype = np.dtype(c["dtype"])
        self.frame = tuple(c["input_frame"])
        self.out_frame = tuple(c["output_frame"])
        self.causal = c["delay"] == "0"
        self.stride = Fraction(c["stride"])
        self.out_flush = int(c["out_flush"])
        self.id = export_id(c)

    def start(self, x: np.ndarray) -> tuple[np.ndarray, Arrays]:
        y, *new = self.sessions["start"].run(None, {"x": x})
        return y, dict(zip(self.names, new))

    def step(self, x: np.ndarray, state: Arrays) -> tuple[np.ndarray, Arrays]:
        feed = {"x": x, **{f"state.{n}": state[n] for n in self.names}}
        y, *new = self.sessions["step"].run(None, feed)
        return y, dict(zip(self.names, new))

    def flush(self, state: Arrays) -> np.ndarray:
        feed = {f"state.{n}": state[n] for n in self.names}
        return self.sessions["flush"].run(None, feed)[0]

    def stream(self, batch_size: int = 1, *, check_finite: bool = False) -> OnnxStream:
        return OnnxStream(self, batch_size, check_finite=check_finite)


def stack_states(model: OnnxModel, states: Sequence[Arrays]) -> Arrays:
    """One state for the rows of ``states`` together (concatenated on each batch axis)."""
    out = {}
    for n in model.names:
        ax = model.axes[n]
        out[n] = states[0][n] if ax is None else np.concatenate([s[n] for s in states], ax)
    return out


def unstack_state(model: OnnxModel, state: Arrays, sizes: Sequence[int]) -> list[Arrays]:
    """The inverse of ``stack_states``: split a state into parts of ``sizes`` rows."""
    cuts = np.cumsum(sizes)[:-1]
    parts: list[Arrays] = [{} for _ in sizes]
    for n in model.names:
        ax = model.axes[n]
        pieces = [state[n]] * len(sizes) if ax is None else np.split(state[n], cuts, ax)
        for part, piece in zip(parts, pieces):
            part[n] = piece
    return parts


class OnnxStream:
    """``push`` chunks of any size, ``close`` at the end; ``snapshot``/``restore``, ``reset``."""

    def __init__(self, model: OnnxModel | str | Path, batch_size: int = 1, *,
                 threads: int = 1, check_finite: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model if isinstance(model, OnnxModel) else OnnxModel(model, threads)
        self.batch_size = batch_size
        self.check_finite = check_finite
        m = self.model
        self.state: Arrays | None = None  # None until the prologue has arrived
        self.pending = np.zeros(m_shape(m, batch_size, 0), m.dtype)
        self.frames_in = 0
        self.frames_out = 0
        self.closed = False
        self._torch = False
        self.restart: Restart | None = None  # rows whose start has not run yet (reset)

    # -- pushing -------------------------------------------------------------------------------
    def expected(self) -> str:
        shape = ["B" if i == 0 else str(s) for i, s in enumerate(m_shape(self.model, 0, -1))]
        shape[0] = str(self.batch_size)
        return "[" + ", ".join("T" if s == "-1" else s for s in shape) + "]"

    def check(self, x: Any) -> np.ndarray:
        """``x`` as an array of this stream's chunks, or a ValueError naming what was expected."""
        if self.closed:
            raise StreamClosedError("push() after close(): open a new stream")
        m = self.model
        if type(x).__module__.startswith("torch"):
            self._torch = True
            if str(x.dtype).replace("torch.", "") != m.dtype.name:
                raise ValueError(f"expected dtype {m.dtype.name}, got {x.dtype}")
            x = x.detach().cpu().numpy()
        if not isinstance(x, np.ndarray):
            raise TypeError(f"push() takes an array shaped {self.expected()}, got "
                            f"{type(x).__name__}")
        want = m_shape(m, self.batch_size, -1)
        axis = m.time_axis % len(want)
        if x.ndim != len(want) or any(w != s for i, (w, s) in enumerate(zip(want, x.shape))
                                      if i != axis):
            raise ValueError(f"expected a chunk shaped {self.expected()}, got {list(x.shape)}")
        if x.dtype != m.dtype:
            raise ValueError(f"expected dtype {m.dtype.name}, got {x.dtype.name} (cast it)")
        if self.check_finite and not np.isfinite(x).all():
            raise ValueError("chunk contains NaN or inf (check_finite=True); it was not consumed")
        return x

    def push(self, x: Any) -> Any:
        """Feed one chunk (any length, 0 included); return the outputs now final."""
        x = self.check(x)
        m = self.model
        axis = m.time_axis % x.ndim
        pending = np.concatenate([self.pending, x], axis)
        ys = []
        state, done = self.state, 0
        avail = pending.shape[axis]
        if state is None and avail >= m.prologue:
            y, state = m.start(np.ascontiguousarray(_take(pending, axis, 0, m.prologue)))
            ys.append(y)
            done = m.prologue
        restart = self.restart
        if restart is not None:  # a copy: nothing of the stream changes unless all calls work
            restart = Restart(restart.rows, list(restart.xs), list(restart.held))
        while state is not None and avail - done >= m.chunk:
            chunk = np.ascontiguousarray(_take(pending, axis, done, done + m.chunk))
            y, state = m.step(chunk, state)
            done += m.chunk
            if restart is None:
                ys.append(y)
                continue
            restart.keep(chunk, y)
            if restart.frames(axis) == m.prologue:
                y, state = restart.finish(m, state)
                ys.append(y)
                restart = None
        self.state, self.pending = state, _take(pending, axis, done, avail).copy()
        self.restart = restart
        self.frames_in += x.shape[axis]
        return self._out(ys)

    def close(self) -> Any:
        """End of stream: what lookahead held back.  Refuses lengths the export is not exact for.

        A causal model (no lookahead) ends on any length: its last partial chunk, or a stream
        shorter than the prologue, is padded with zeros and stepped (``start`` if it never
        started), keeping as many outputs as the offline forward has, ``ceil(frames * stride)``
        in all.  A model with lookahead is exact only for streams of at least the prologue whose
        length is a multiple of the chunk."""
        if self.closed:
            raise StreamClosedError("close() called twice")
        m = self.model
        axis = m.time_axis % self.pending.ndim
        left = self.pending.shape[axis]
        if not m.causal:
            if self.state is None:
                raise ValueError(
                    f"this stream has {self.frames_in} frames; the export starts with "
                    f"{m.prologue} (its prologue) and this model has lookahead: exact only for "
                    "streams at least that long (push more, or export with a smaller chunk)")
            if left:
                raise ValueError(
                    f"{left} frames are left over a multiple of the export's chunk "
                    f"({m.chunk}); this model has lookahead, so its end is exact only for lengths "
                    f"that are multiples of {m.chunk} (pad the stream, or export with a chunk "
                    "that divides its length)")
        restart = self.restart
        if restart is not None and not m.causal:
            raise ValueError(
                f"rows {restart.rows.tolist()} were restarted {restart.frames(axis) + left} "
                f"frames ago; their new streams start with {m.prologue} frames (the prologue) and "
                "this model has lookahead: exact only once that many have arrived (push more)")
        ys: list[np.ndarray] = []
        if self.state is None and self.frames_in == 0:
            self.closed = True
            return self._out(ys)
        want = -(-self.frames_in * m.stride.numerator // m.stride.denominator) - self.frames_out
        tail: list[np.ndarray] = []  # outputs of the padded last frames, then trimmed to want
        if left or self.state is None:
            n = m.prologue if self.state is None else m.chunk
            pad = np.zeros(m_shape(m, self.batch_size, n - left), m.dtype)
            x = np.concatenate([self.pending, pad], axis)
            y, state = m.start(x) if self.state is None else m.step(x, self.state)
            if restart is not None:
                restart.keep(x, y)
            else:
                tail.append(y)
            self.state, self.pending = state, _take(self.pending, axis, 0, 0).copy()
        assert self.state is not None
        if restart is not None:  # restarted rows with fewer frames than their start takes
            short = m.prologue - restart.frames(axis)
            if short:
                restart.xs.append(np.zeros(m_shape(m, len(restart.rows), short), m.dtype))
            y, self.state = restart.finish(m, self.state)
            tail.append(y)
            self.restart = None
        if tail:
            y = np.concatenate(tail, m.out_time_axis % tail[0].ndim)
            out_axis = m.out_time_axis % y.ndim
            ys.append(_take(y, out_axis, 0, min(max(want, 0), y.shape[out_axis])))
        if m.out_flush:  # a model without lookahead holds nothing back: no flush call
            ys.append(m.flush(self.state))
        self.closed = True
        return self._out(ys)

    def _out(self, ys: list[np.ndarray]) -> Any:
        m = self.model
        if ys:
            y = ys[0] if len(ys) == 1 else np.concatenate(ys, m.out_time_axis % ys[0].ndim)
        else:
            shape = [self.batch_size, *m.out_frame]
            shape.insert(m.out_time_axis % (len(shape) + 1), 0)
            y = np.zeros(shape, m.dtype)
        self.frames_out += y.shape[m.out_time_axis % y.ndim]
        if self._torch:
            import torch

            return torch.from_numpy(np.ascontiguousarray(y))
        return y

    # -- rows -----------------------------------------------------------------------------------
    def reset(self, mask: Sequence[bool] | np.ndarray) -> None:
        """Restart the rows in ``mask`` as fresh streams; the other rows go on untouched.

        A reset falls on a chunk boundary (after the prologue, nothing pending).  The restarted
        rows go through ``start`` again on their own once their prologue has arrived
        (``row_restart.py``); until then the batch's outputs are held.  As in
        ``core.Stream.reset``, a restarted row's next outputs are zeros for the lookahead, then
        its new stream."""
        if self.closed:
            raise StreamClosedError("reset() after close()")
        rows = np.asarray(mask, dtype=bool).ravel()
        if rows.size != self.batch_size:
            raise ValueError(f"reset mask needs {self.batch_size} entries, got {rows.size}")
        if not rows.any() or self.frames_in == 0:
            return  # nothing restarts, or no row has started yet
        m = self.model
        left = self.pending.shape[m.time_axis % self.pending.ndim]
        if self.state is None:
            raise ValueError(
                f"reset needs the stream past its prologue ({m.prologue} frames); "
                f"{self.frames_in} were pushed: push {m.prologue - self.frames_in} more first")
        if left:
            raise ValueError(
                f"reset needs the stream on a chunk boundary of the export ({m.chunk} frames "
                f"after the prologue of {m.prologue}); {left} frames are pending: push "
                f"{m.chunk - left} more first")
        if self.restart is not None:
            n = m.prologue - self.restart.frames(m.time_axis % self.pending.ndim)
            raise ValueError(f"rows {self.restart.rows.tolist()} restarted earlier have not "
                             f"started yet: push {n} more frames first")
        if held_back(m) < 0:
            raise ValueError("reset is not possible for this export: its start gives more "
                             "outputs than its frames (a layer emits ahead of time); use a new "
                             "stream for the row instead")
        self.restart = Restart(np.flatnonzero(rows))

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The stream as bytes (``array_blob``): state, pending frames, counters, the export."""
        head = {"frames_in": self.frames_in, "frames_out": self.frames_out,
                "closed": self.closed, "batch_size": self.batch_size,
                "fingerprint": self.model.contract["fingerprint"], "export": self.model.id,
                "started": self.state is not None,
                "restart": None if self.restart is None else self.restart.rows.tolist()}
        arrays = {"pending": self.pending}
        for n, v in (self.state or {}).items():
            arrays[f"state.{n}"] = v
        if self.restart is not None and self.restart.xs:
            m = self.model
            arrays["restart.x"] = np.concatenate(self.restart.xs, m.time_axis % self.pending.ndim)
            arrays["restart.y"] = np.concatenate(self.restart.held,
                                                 m.out_time_axis % self.restart.held[0].ndim)
        return array_blob.pack(head, arrays)

    @classmethod
    def restore(cls, model: OnnxModel | str | Path, blob: bytes) -> OnnxStream:
        """A stream from ``snapshot()`` bytes, for the same exported model."""
        try:
            head, data = array_blob.unpack(blob)
            batch = int(head["batch_size"])
        except Exception as e:  # noqa: BLE001 - any decoding failure is a bad blob
            raise ValueError(f"not an OnnxStream snapshot: {e}") from e
        s = cls(model, batch)
        if head.get("fingerprint") != s.model.contract["fingerprint"]:
            raise ValueError("snapshot was taken from a different model (fingerprints differ)")
        if head.get("export") != s.model.id:
            raise ValueError("snapshot was taken from another export of this model (its chunk, "
                             "prologue, dtype or state layout differ): restore it into the "
                             "export it came from")
        s.pending = data["pending"]
        s.frames_in, s.frames_out, s.closed = head["frames_in"], head["frames_out"], head["closed"]
        if head["started"]:
            s.state = {n: data[f"state.{n}"] for n in s.model.names}
        if head.get("restart") is not None:
            s.restart = Restart(np.asarray(head["restart"], dtype=np.int64))
            if "restart.x" in data:
                s.restart.xs, s.restart.held = [data["restart.x"]], [data["restart.y"]]
        return s


def m_shape(m: OnnxModel, batch: int, frames: int) -> list[int]:
    """An input's shape for ``batch`` rows and ``frames`` frames."""
    shape = [batch, *m.frame]
    shape.insert(m.time_axis % (len(shape) + 1), frames)
    return shape


def _take(a: np.ndarray, axis: int, lo: int, hi: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(lo, hi)
    return a[tuple(index)]
