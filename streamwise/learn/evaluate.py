"""Prequential (test-then-train) evaluation of any stream learner, ours or River's.

Every record ``(x, y)`` is first predicted by the model as it stands, the prediction scored, and
only then learned: each record is test data once and training data after, and the metric is what
a deployed model would have scored live.  As River's ``progressive_val_score`` does, a metric
that ``requires_labels`` reads ``predict_one(x)``, the others ``predict_proba_one(x)``, and an
empty prediction (``None`` or ``{}``) is not scored.  Metrics are kept cumulatively and over a
rolling window; at ``checkpoints`` evenly spaced records the report stores both, the wall time,
and the records per second.  Multiply-accumulates per record are counted by PyTorch's FLOP counter
on the first ``count_macs`` records (predict and learn together; models that do no torch
arithmetic report ``None``).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from streamwise.learn.metrics import Rolling


@dataclass
class Report:
    model: str
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cumulative: dict[str, list[float]] = field(default_factory=dict)
    rolling: dict[str, list[float]] = field(default_factory=dict)
    window: int = 0
    samples: int = 0
    macs_per_sample: float | None = None

    def final(self) -> dict[str, float]:
        return {k: v[-1] for k, v in self.cumulative.items() if v}

    @property
    def us_per_sample(self) -> float:
        return 1e6 * self.seconds[-1] / self.samples if self.samples else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "final": self.final(), "us_per_sample": self.us_per_sample}


def _name(metric: Any) -> str:
    return str(getattr(metric, "name", None) or type(metric).__name__)


def macs_of(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``fn()`` and the multiply-accumulates its torch operations did (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = fn()
    return out, counter.get_total_flops() / 2


def prequential(model: Any, stream: Iterable[tuple[Any, Any]], metrics: list[Any], *,
                window: int = 1000, checkpoints: int = 50, total: int | None = None,
                count_macs: int = 20, progress: bool = True, name: str | None = None) -> Report:
    """Test-then-train ``model`` over ``stream``; ``metrics`` are metric objects (ours or
    River's), each copied for the rolling window."""
    if not metrics:
        raise ValueError("expected at least one metric")
    if window < 1 or checkpoints < 1:
        raise ValueError(f"need window >= 1 and checkpoints >= 1, got {window}, {checkpoints}")
    if total is None and isinstance(stream, Sized):
        total = len(stream)
    names = [_name(m) for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names must differ, got {names}")
    rolling = [Rolling(copy.deepcopy(m), window) for m in metrics]
    labels = [getattr(m, "requires_labels", True) for m in metrics]
    every = max(1, (total or 1000 * checkpoints) // checkpoints)
    report = Report(name or type(model).__name__, window=window,
                    cumulative={n: [] for n in names}, rolling={n: [] for n in names})
    macs, counted = 0.0, 0
    bar = tqdm(total=total, desc=f"prequential {report.model}", disable=not progress,
               leave=False)
    start = time.perf_counter()
    n = 0

    def step(x: Any, y: Any) -> tuple[Any, Any]:
        label = model.predict_one(x) if any(labels) else None
        proba = model.predict_proba_one(x) if not all(labels) else None
        model.learn_one(x, y)
        return label, proba

    for x, y in stream:
        if counted < count_macs:
            (label, proba), m = macs_of(lambda: step(x, y))  # noqa: B023 (called at once)
            macs, counted = macs + m, counted + 1
        else:
            label, proba = step(x, y)
        for metric, roll, needs_label in zip(metrics, rolling, labels):
            y_pred = label if needs_label else proba
            if y_pred is not None and y_pred != {}:
                metric.update(y, y_pred)
                roll.update(y, y_pred)
        n += 1
        bar.update()
        if n % every == 0:
            _checkpoint(report, n, start, metrics, rolling, names)
    bar.close()
    if not report.steps or report.steps[-1] != n:
        _checkpoint(report, n, start, metrics, rolling, names)
    report.samples = n
    report.macs_per_sample = macs / counted if counted and macs > 0 else None
    return report


def _checkpoint(report: Report, n: int, start: float, metrics: list[Any], rolling: list[Any],
                names: list[str]) -> None:
    report.steps.append(n)
    report.seconds.append(time.perf_counter() - start)
    for name, metric, roll in zip(names, metrics, rolling):
        report.cumulative[name].append(float(metric.get()))
        report.rolling[name].append(float(roll.get()))


def compare(models: dict[str, Callable[[], Any]], make_stream: Callable[[], Iterable[Any]],
            make_metrics: Callable[[], list[Any]], **kwargs: Any) -> dict[str, Report]:
    """Each model (a factory) through its own copy of the same stream and metrics."""
    return {name: prequential(make(), make_stream(), make_metrics(), name=name, **kwargs)
            for name, make in models.items()}


def save_reports(reports: dict[str, Report], out: Path, title: str, stem: str) -> list[Path]:
    """``out/<stem>.json`` (every checkpoint) and ``out/<stem>.png`` (a panel per metric:
    cumulative solid, rolling dotted, one colour per model)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.png"]
    paths[0].write_text(json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=1))
    metric_names = list(next(iter(reports.values())).cumulative)
    fig, axes = plt.subplots(1, len(metric_names), figsize=(5.5 * len(metric_names), 4),
                             squeeze=False)
    for ax, metric in zip(axes[0], metric_names):
        for i, (name, r) in enumerate(reports.items()):
            colour = f"C{i}"
            ax.plot(r.steps, r.cumulative[metric], color=colour, label=f"{name}")
            ax.plot(r.steps, r.rolling[metric], color=colour, ls=":", lw=1)
        ax.set_title(f"{metric} (solid: cumulative, dotted: last {r.window})")
        ax.set_xlabel("records")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths
