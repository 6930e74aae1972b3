"""``streamwise nab run``: stream every NAB file through a detector, one record at a time.

Detectors are built per file from what NAB's harness tells every detector in advance: the file's
minimum and maximum and its probationary length (15% of the rows, at most 750).  ``htm`` uses
both (as Numenta's detector does), ``lmuPredictor`` only the probation (to time its likelihood);
``windowedGaussian`` learns everything from the stream.  Files are
independent streams, so ``jobs > 1`` runs them in parallel processes.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from streamwise.learn.anomaly.lmu_predictor import LMUPredictorDetector
from streamwise.learn.anomaly.postprocess import nab_scoring, numenta_scoring
from streamwise.learn.anomaly.windowed_gaussian import WindowedGaussian
from streamwise.learn.base import AnomalyDetector
from streamwise.learn.htm.detector import HTMDetector
from streamwise.learn.series import load_series, nab_root
from streamwise.nab.corpus import data_files, result_path
from streamwise.nab.scorer import probation_length


@dataclass(frozen=True)
class FileInfo:
    """What a detector may know about a file before streaming it (as in NAB's harness)."""

    low: float
    high: float
    probation: int


#: detector factories, given the file's FileInfo
DETECTORS: dict[str, Callable[[FileInfo], AnomalyDetector]] = {
    "windowedGaussian": lambda info: WindowedGaussian(),
    "lmuPredictor": lambda info: nab_scoring(LMUPredictorDetector(), info.probation),
    "htm": lambda info: nab_scoring(HTMDetector(info.low, info.high), info.probation),
    # Numenta's own post-processing (likelihood with its red-zone filter, spatial rule)
    "htmNumenta": lambda info: numenta_scoring(HTMDetector(info.low, info.high), info.probation),
    # the backtracking temporal memory Numenta's NAB results came from, Numenta's post-processing
    "htmBacktrack": lambda info: numenta_scoring(HTMDetector(info.low, info.high,
                                                             tm="backtracking"), info.probation),
}


def run_file(name: str, file: str, out: Path, root: Path) -> tuple[int, float, int]:
    """Stream one file through a fresh detector and write its results.

    Returns (records, seconds, rows whose timestamp went back).
    """
    import torch

    torch.set_num_threads(1)  # files run in parallel processes: one core each
    series = load_series(file, root)
    info = FileInfo(min(series.values), max(series.values),
                    int(probation_length(len(series.values))))
    detector = DETECTORS[name](info)
    records = [{"timestamp": t, "value": v} for t, v in zip(series.timestamps, series.values)]
    t0 = time.perf_counter()
    scores, raws = [], []
    for r in records:  # no look-ahead
        scores.append(detector.score_then_learn(r))
        raws.append(detector.last_raw)
    seconds = time.perf_counter() - t0
    raw = raws[-1] is not None  # the detector's score before its likelihood: kept for study
    path = result_path(out, name, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "anomaly_score"] + (["raw_score"] if raw else []))
        for i, (t, v, s) in enumerate(zip(series.timestamps, series.values, scores)):
            w.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), v, s] + ([raws[i]] if raw else []))
    tmp.replace(path)  # no partial result files
    return len(scores), seconds, series.out_of_order


def run_detector(name: str, out: Path, root: Path | None = None, progress: bool = True,
                 files: list[str] | None = None, jobs: int = 1) -> dict[str, Any]:
    """Write ``out/<name>/<category>/<name>_<file>.csv`` for every file; returns timing."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {sorted(DETECTORS)}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    root = root or nab_root()
    names = files or data_files(root)
    bar = tqdm(total=len(names), desc=f"nab run {name}", disable=not progress)
    results = []
    if jobs == 1:
        for file in names:
            results.append(run_file(name, file, out, root))
            bar.update()
    else:
        with ProcessPoolExecutor(jobs) as pool:
            # the longest files first, so no process is left with a long one at the end
            order = sorted(names, key=lambda f: -(root / "data" / f).stat().st_size)
            futures = [pool.submit(run_file, name, f, out, root) for f in order]
            for fut in as_completed(futures):
                results.append(fut.result())
                bar.update()
    bar.close()
    records = sum(r[0] for r in results)
    seconds = sum(r[1] for r in results)
    return {"detector": name, "files": len(names), "records": records,
            "us_per_record": 1e6 * seconds / max(records, 1),
            "out_of_order": sum(r[2] for r in results)}
