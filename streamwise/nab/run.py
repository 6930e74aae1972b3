"""``streamwise nab run``: stream every NAB file through a detector, one record at a time."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from streamwise.learn.anomaly.base import Detector
from streamwise.learn.anomaly.lmu_predictor import LMUPredictorDetector
from streamwise.learn.anomaly.windowed_gaussian import WindowedGaussian
from streamwise.learn.htm.detector import HTMDetector
from streamwise.nab.corpus import data_files, load_series, nab_root, result_path

#: detector factories, given the file's (min, max): only `htm` uses them, as Numenta's does
DETECTORS: dict[str, Callable[[float, float], Detector]] = {
    "windowedGaussian": lambda low, high: WindowedGaussian(),
    "lmuPredictor": lambda low, high: LMUPredictorDetector(),
    "htm": lambda low, high: HTMDetector(low, high),
}


def run_detector(name: str, out: Path, root: Path | None = None, progress: bool = True,
                 files: list[str] | None = None) -> dict[str, Any]:
    """Write ``out/<name>/<category>/<name>_<file>.csv`` for every file; returns timing."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {sorted(DETECTORS)}")
    root = root or nab_root()
    names = files or data_files(root)
    records, seconds = 0, 0.0
    for file in tqdm(names, desc=f"nab run {name}", disable=not progress):
        series = load_series(file, root)
        detector = DETECTORS[name](min(series.values), max(series.values))
        t0 = time.perf_counter()
        records_in = [{"timestamp": t, "value": v} for t, v in zip(series.timestamps,
                                                                    series.values)]
        scores = [detector.score_then_learn(r) for r in records_in]  # no look-ahead
        seconds += time.perf_counter() - t0
        records += len(scores)
        path = result_path(out, name, file)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["timestamp", "value", "anomaly_score"])
            for t, v, s in zip(series.timestamps, series.values, scores):
                w.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), v, s])
        tmp.replace(path)  # no partial result files
    return {"detector": name, "files": len(names), "records": records,
            "us_per_record": 1e6 * seconds / max(records, 1)}
