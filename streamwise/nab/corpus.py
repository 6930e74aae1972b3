"""Reading NAB's data, labels, profiles and detector results (NAB's own file layout)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

from streamwise.learn.series import load_series, nab_root, parse_time
from streamwise.nab.scorer import Point, best_threshold, normalised, sweep_points


def data_files(root: Path | None = None) -> list[str]:
    root = root or nab_root()
    return sorted(str(p.relative_to(root / "data")) for p in (root / "data").rglob("*.csv"))


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

