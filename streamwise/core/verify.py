"""``verify``: prove a streaming module equals its offline ``forward`` on random chunkings.

It streams the input under many random irregular chunkings (sizes 0 and 1 included), compares with
``forward`` on the whole input, and measures what a user needs to know before going live: the
error, the lookahead actually observed, the state size, and per-chunk latency.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from streamwise.core.protocol import StreamingModule


def random_chunks(length: int, rng: np.random.Generator, max_chunk: int | None = None) -> list[int]:
    """Irregular chunk sizes summing to ``length``: zeros, ones, and a spread of larger sizes."""
    max_chunk = max_chunk or max(2, length // 4)
    sizes: list[int] = []
    left = length
    while left > 0:
        r = rng.random()
        if r < 0.1:
            n = 0
        elif r < 0.3:
            n = 1
        else:
            n = int(rng.integers(2, max_chunk + 1))
        n = min(n, left)
        sizes.append(n)
        left -= n
    return sizes


def stream_chunks(
    model: StreamingModule, x: Tensor, sizes: list[int]
) -> tuple[Tensor, list[float]]:
    """Push ``x`` in chunks of ``sizes`` then close; return the output and per-push seconds."""
    s = model.stream(x.shape[0], device=x.device, dtype=x.dtype)
    axis = model.time_axis
    outs, times, pos = [], [], 0
    for n in sizes:
        t0 = time.perf_counter()
        outs.append(s.push(x.narrow(axis, pos, n)))
        times.append(time.perf_counter() - t0)
        pos += n
    outs.append(s.close())
    return torch.cat(outs, model.out_time_axis), times


def measured_delay(model: StreamingModule, x: Tensor, frames: int = 512) -> float:
    """Lookahead observed, frame by frame: max over outputs of (input frame at emission - own time).

    Output ``k``'s own time is input frame ``k / stride``; pushing one frame at a time shows the
    frame at which it actually came out.
    """
    s = model.stream(x.shape[0], device=x.device, dtype=x.dtype)
    worst, emitted, stride = Fraction(0), 0, model.stride
    axis = model.time_axis
    for i in range(min(frames, x.shape[axis])):
        n = s.push(x.narrow(axis, i, 1)).shape[model.out_time_axis]
        if n:  # the earliest new output has the largest lag
            worst = max(worst, i - Fraction(emitted) / stride)
        emitted += n
    return float(worst)


@dataclass
class Report:
    """What ``verify`` measured."""

    max_abs_error: float
    max_rel_error: float
    output_scale: float
    trials: int
    delay_frames: float
    measured_delay_frames: float
    stride: str
    receptive_field: int
    state_bytes_bound: int
    state_bytes_measured: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    dtype: str = "float32"
    passed: bool = False
    tolerance: float = 1e-5
    # total latency (Stream.FM's accounting) for pushes of ``chunk_frames``: a frame waits for
    # its chunk to fill and for the model's lookahead (algorithmic), then for the push (compute)
    chunk_frames: int = 0
    sample_rate: float | None = None
    algorithmic_frames: float = 0.0
    compute_ms: dict[str, float] = field(default_factory=dict)
    total_latency_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def __str__(self) -> str:
        lat = ", ".join(f"{k} {v:.3f} ms" for k, v in self.latency_ms.items())
        verdict = "PASS" if self.passed else "FAIL"
        return "\n".join([
            f"streamwise verify: {verdict} ({self.trials} random chunkings, {self.dtype})",
            f"  max abs error      {self.max_abs_error:.3e}",
            f"  max rel error      {self.max_rel_error:.3e} (tolerance {self.tolerance:g}, "
            f"output scale {self.output_scale:.3g})",
            f"  delay              {self.delay_frames:g} frames (metadata), "
            f"{self.measured_delay_frames} measured",
            f"  stride             {self.stride}",
            f"  receptive field    {self.receptive_field} frames",
            f"  state              {self.state_bytes_measured} bytes measured, "
            f"{self.state_bytes_bound} bound",
            f"  latency per push   {lat}",
            self._total_line(),
        ])

    def _total_line(self) -> str:
        comp = ", ".join(f"{k} {v:.3f} ms" for k, v in self.compute_ms.items())
        head = (f"  total latency      {self.chunk_frames}-frame chunks: algorithmic "
                f"{self.algorithmic_frames:g} frames (chunk + delay)")
        if self.sample_rate is None:
            return f"{head} + compute {comp} (give sample_rate for milliseconds)"
        tot = ", ".join(f"{k} {v:.3f} ms" for k, v in self.total_latency_ms.items())
        algo = self.algorithmic_frames / self.sample_rate * 1e3
        return f"{head} = {algo:.3f} ms, + compute {comp}: total {tot}"


def verify(
    model: StreamingModule,
    x: Tensor,
    trials: int = 20,
    *,
    seed: int = 0,
    tolerance: float | None = None,
    max_chunk: int | None = None,
    chunk: int | None = None,
    sample_rate: float | None = None,
) -> Report:
    """Compare streamed and offline outputs of ``model`` on ``x`` over random chunkings, and
    measure total latency for pushes of ``chunk`` frames (default: a tenth of ``x``):
    algorithmic (``chunk + delay`` frames, in ms when ``sample_rate`` is given) plus the
    measured compute of a push."""
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                              or chunk < 1):
        raise ValueError(f"chunk must be an integer >= 1 (frames per push), got {chunk!r}")
    if sample_rate is not None and not (np.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number of frames per second, got "
                         f"{sample_rate!r}")
    model = model.eval()
    tol = tolerance if tolerance is not None else (1e-10 if x.dtype == torch.float64 else 1e-5)
    rng = np.random.default_rng(seed)
    with torch.inference_mode():
        ref = model(x)
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    worst, times = 0.0, []
    for _ in range(trials):
        y, t = stream_chunks(model, x, random_chunks(x.shape[model.time_axis], rng, max_chunk))
        if y.shape != ref.shape:
            raise AssertionError(f"streamed shape {tuple(y.shape)} != offline {tuple(ref.shape)}")
        worst = max(worst, float((y - ref).abs().max()) if y.numel() else 0.0)
        times.extend(t)
    s = model.stream(x.shape[0], device=x.device, dtype=x.dtype)
    s.push(x)
    rel = worst / max(scale, 1e-12)
    ms = np.asarray(times) * 1e3
    length = x.shape[model.time_axis]
    c = chunk or max(1, length // 10)
    sizes = [c] * (length // c)
    _, pushes = stream_chunks(model, x, sizes or [length])
    comp = np.asarray(pushes) * 1e3  # seconds per push of ``c`` frames
    algo = float(model.delay) + c
    compute = {f"p{q}": float(np.percentile(comp, q)) for q in (50, 99)}
    total = ({k: algo / sample_rate * 1e3 + v for k, v in compute.items()}
             if sample_rate is not None else {})
    return Report(
        max_abs_error=worst,
        max_rel_error=rel,
        output_scale=scale,
        trials=trials,
        delay_frames=float(model.delay),
        measured_delay_frames=measured_delay(model, x),
        stride=str(model.stride),
        receptive_field=model.receptive_field,
        state_bytes_bound=model.state_nbytes(x.shape[0], x.dtype, x.shape[1]),
        state_bytes_measured=s.state_nbytes(),
        latency_ms={f"p{q}": float(np.percentile(ms, q)) for q in (50, 90, 99)} if len(ms) else {},
        dtype=str(x.dtype).replace("torch.", ""),
        passed=rel <= tol,
        tolerance=tol,
        chunk_frames=c,
        sample_rate=sample_rate,
        algorithmic_frames=algo,
        compute_ms=compute,
        total_latency_ms=total,
    )
