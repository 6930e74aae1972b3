"""What a conversion found and measured: latency, state, receptive field, one row per op."""

from __future__ import annotations

from collections import Counter
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

    dtype: str | None = None  # of the example ("float64"); names the verified precision

    def ms(self, frames: float | None) -> str:
        if frames is None or not self.sample_rate:
            return ""
        return f" ({frames / self.sample_rate * 1e3:.2f} ms at {self.sample_rate:g} Hz)"

    def to_dict(self) -> dict[str, Any]:
        """Every field and every op row (the printed report collapses per-frame rows)."""
        return {**asdict(self), "verdict": self.verdict()}

    @property
    def passed(self) -> bool:
        return self.verified and self.max_abs_error <= self.tolerance * max(self.output_scale, 1.0)

    def error(self) -> str:
        """The verified error relative to the output scale (its largest magnitude)."""
        if self.output_scale > 0:
            return f"{self.max_abs_error / self.output_scale:.1e} of the output scale"
        return f"{self.max_abs_error:.1e} absolute (the output is zero)"

    def verdict(self) -> str:
        """One line: does it stream exactly, its latency and its state per stream."""
        cost = (f"latency {self.latency_frames:g} frames{self.ms(self.latency_frames)}, "
                f"{_bytes(self.state_bytes)} state per stream")
        if not self.verified:
            return f"CONVERTED, NOT VERIFIED: {cost}"
        if not self.passed:
            return (f"FAILED: the stream differs from the model by {self.error()} (tolerance "
                    f"{self.tolerance:g})")
        prec = f"{self.dtype} " if self.dtype else ""
        return f"OK: streams exactly ({prec}error {self.error()}), {cost}"

    def __str__(self) -> str:
        return self.text()

    def text(self, ops: bool = False) -> str:
        """The report as the CLI prints it; per-frame op rows are one summary line unless
        ``ops`` (``streamwise convert --ops``)."""
        rf = ("unbounded (recurrent)" if self.receptive_field is None
              else f"{self.receptive_field} frames{self.ms(self.receptive_field)}")
        lines = [
            self.verdict(),
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
            lines.append(
                f"  verified             {'PASS' if self.passed else 'FAIL'}: {self.trials} "
                f"random chunkings (sizes 0 and 1 included) vs the original model, max error "
                f"{self.error()} (abs {self.max_abs_error:.2e}, scale {self.output_scale:.3g}, "
                f"tolerance {self.tolerance:g} x max(scale, 1))")
        rows = self.ops if ops else [r for r in self.ops if not _per_frame(r)]
        if rows:
            w = max(len(r.node) for r in rows)
            wo = max(len(r.op) for r in rows)
            lines.append("  ops:" if ops else "  ops that keep state or move time:")
            lines.append(f"    {'node':<{w}}  {'op':<{wo}}  {'delay':>6}  {'stride':>7}  "
                         f"{'state B':>9}  streams as")
            for r in rows:
                lines.append(f"    {r.node:<{w}}  {r.op:<{wo}}  {r.delay:>6}  {r.stride:>7}  "
                             f"{r.state_bytes:>9,}  {r.how}")
        hidden = [r for r in self.ops if r not in rows]
        if hidden:
            lines.append(f"  {per_frame_summary(hidden)}, no state (--ops lists every row)")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.problems:
            lines.append(f"  cannot stream exactly ({len(self.problems)}):")
            lines.extend(f"    - {p}" for p in self.problems)
        return "\n".join(lines)


def _per_frame(r: OpRow) -> bool:
    """A row that streams frame by frame with no state: collapsed in the printed report."""
    return r.how.startswith("per frame") and r.state_bytes == 0


def _kind(r: OpRow) -> str:
    """The op a row runs: its module class, method or function name."""
    if r.op.endswith(")") and " (" in r.op:
        return r.op.rsplit(" (", 1)[1][:-1]
    return r.op.strip(".()")


def per_frame_summary(rows: list[OpRow], kinds: int = 6) -> str:
    """``"212 per-frame ops (add 40, mul 31, GELU 12, ...)"``, the commonest kinds first."""
    counts = Counter(_kind(r) for r in rows)
    named = ", ".join(f"{k} {n}" for k, n in counts.most_common(kinds))
    more = ", ..." if len(counts) > kinds else ""
    return f"{len(rows)} per-frame op{'s' if len(rows) != 1 else ''} ({named}{more})"


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.1f} MiB"
