"""Reading NAB's data, labels, profiles and detector results (NAB's own file layout)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from streamwise.nab.scorer import Point, best_threshold, normalised, sweep_points


def nab_root() -> Path:
    """``../shared/data/nab`` beside the repository (``$STREAMWISE_SHARED`` overrides)."""
    from streamwise.learn.streamx.predict import shared_data

    return shared_data() / "nab"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


@dataclass
class Series:
    """One NAB data file: relative name, timestamps and values."""

    name: str
    timestamps: list[datetime]
    values: list[float]
    out_of_order: int = 0  # rows whose timestamp is earlier than the previous row's


def data_files(root: Path | None = None) -> list[str]:
    root = root or nab_root()
    return sorted(str(p.relative_to(root / "data")) for p in (root / "data").rglob("*.csv"))


def load_series(name: str, root: Path | None = None, strict: bool = False) -> Series:
    """Read one data file; a bad row raises ValueError naming its line.

    Rows stay in file order, as NAB streams them.  A timestamp earlier than the one before it
    is counted in ``Series.out_of_order`` (NAB's own corpus has a few, around clock changes), or
    raises with ``strict``; repeated timestamps are allowed.
    """
    root = root or nab_root()
    back = 0
    path = root / "data" / name
    ts: list[datetime] = []
    vals: list[float] = []
    with path.open() as f:
        for i, row in enumerate(csv.DictReader(f)):
            try:
                t, v = parse_time(row["timestamp"]), float(row["value"])
            except (KeyError, ValueError, TypeError, AttributeError) as e:
                raise ValueError(f"{path}: line {i + 2} is not timestamp,value: {row}") from e
            if not math.isfinite(v):
                raise ValueError(f"{path}: line {i + 2} has a non-finite value {v}")
            if ts and t < ts[-1]:
                if strict:
                    raise ValueError(f"{path}: line {i + 2} timestamp {t} is before the "
                                     f"previous one ({ts[-1]}): timestamps must not go back")
                back += 1
            ts.append(t)
            vals.append(v)
    if not vals:
        raise ValueError(f"{path}: no rows")
    return Series(name, ts, vals, back)


def window_indices(timestamps: list[datetime], limits: list[list[str]]) -> list[tuple[int, int]]:
    """Labelled windows as (first, last) row indices."""
    index = {t: i for i, t in enumerate(timestamps)}
    return [(index[parse_time(a)], index[parse_time(b)]) for a, b in limits]


def load_profiles(root: Path | None = None) -> dict[str, dict[str, float]]:
    root = root or nab_root()
    profiles = json.loads((root / "config" / "profiles.json").read_text())
    return {name: p["CostMatrix"] for name, p in profiles.items()}


def result_path(results: Path, detector: str, name: str) -> Path:
    """NAB's layout: ``DIR/<detector>/<category>/<detector>_<file>``."""
    category, file = name.split("/")
    return results / detector / category / f"{detector}_{file}"


def read_scores(path: Path) -> list[float]:
    with path.open() as f:
        return [float(row["anomaly_score"]) for row in csv.DictReader(f)]


def score_detector(results: Path, detector: str, root: Path | None = None) -> dict[str, float]:
    """Normalised NAB scores of a results folder for the three profiles."""
    root = root or nab_root()
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    names = data_files(root)
    missing = [str(result_path(results, detector, n)) for n in names
               if not result_path(results, detector, n).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(names)} result files missing: "
                                + ", ".join(missing))
    files = []
    for name in names:
        series = load_series(name, root)
        scores = read_scores(result_path(results, detector, name))
        if len(scores) != len(series.values):
            raise ValueError(f"{name}: {len(scores)} scores for {len(series.values)} rows")
        files.append((name, scores, window_indices(series.timestamps, labels.get(name, []))))
    n_windows = sum(len(labels.get(n, [])) for n in names)
    out = {}
    for profile, cost in load_profiles(root).items():
        points: list[Point] = []
        null_points: list[Point] = []
        for name, scores, windows in files:
            points += sweep_points(scores, windows, name, cost)
            null_points += sweep_points([0.5] * len(scores), windows, name, cost)
        _, score = best_threshold(points, cost)
        _, null = best_threshold(null_points, cost)
        out[profile] = normalised(score, null, n_windows, cost)
    return out

