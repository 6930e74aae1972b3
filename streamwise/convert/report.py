"""What a conversion found and measured: latency, state, receptive field, one row per op."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from streamwise.convert.trace import Problem


@dataclass
class OpRow:
    """One streamed node: what it is and how it streams."""

    node: str
    op: str
    how: str
    delay: str
    stride: str
    state_bytes: int = 0


@dataclass
class ConvertReport:
    """``sw.convert(...).report``; ``str()`` prints it as the CLI does."""

    model: str
    input_shape: list[int]
    time_axis: int
    output_shape: list[int]
    out_time_axis: int
    stride: str
    latency_frames: float
    receptive_field: int | None
    state_bytes: int = 0
    sample_rate: float | None = None
    ops: list[OpRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verified: bool = False
    trials: int = 0
    max_abs_error: float = 0.0
    output_scale: float = 0.0
    tolerance: float = 0.0
    chunk_sizes: list[int] = field(default_factory=list)

    def ms(self, frames: float | None) -> str:
        if frames is None or not self.sample_rate:
            return ""
        return f" ({frames / self.sample_rate * 1e3:.2f} ms at {self.sample_rate:g} Hz)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        rf = ("unbounded (recurrent)" if self.receptive_field is None
              else f"{self.receptive_field} frames{self.ms(self.receptive_field)}")
        lines = [
            f"streamwise convert: {self.model}",
            f"  input  {self.input_shape}, time on axis {self.time_axis}",
            f"  output {self.output_shape}, time on axis {self.out_time_axis}, "
            f"{self.stride} output frames per input frame",
            f"  algorithmic latency  {self.latency_frames:g} input frames"
            f"{self.ms(self.latency_frames)}",
            f"  receptive field      {rf}",
            f"  state per stream     {self.state_bytes:,} bytes (measured, batch 1)",
        ]
        if self.verified:
            verdict = "PASS" if self.max_abs_error <= self.tolerance * max(
                self.output_scale, 1.0) else "FAIL"
            lines.append(
                f"  verified             {verdict}: {self.trials} random chunkings (sizes 0 and 1 "
                f"included) vs the original model, max abs error {self.max_abs_error:.2e} "
                f"(output scale {self.output_scale:.3g}, tolerance {self.tolerance:g} x scale)")
        if self.ops:
            w = max(len(r.node) for r in self.ops)
            wo = max(len(r.op) for r in self.ops)
            lines.append("  ops:")
            lines.append(f"    {'node':<{w}}  {'op':<{wo}}  {'delay':>6}  {'stride':>7}  "
                         f"{'state B':>9}  streams as")
            for r in self.ops:
                lines.append(f"    {r.node:<{w}}  {r.op:<{wo}}  {r.delay:>6}  {r.stride:>7}  "
                             f"{r.state_bytes:>9,}  {r.how}")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.problems:
            lines.append(f"  cannot stream exactly ({len(self.problems)}):")
            lines.extend(f"    - {p}" for p in self.problems)
        return "\n".join(lines)
