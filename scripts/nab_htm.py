"""Run one NAB detector over the corpus once, then score its raw scores under several
post-processings (the raw score does not depend on the wrapper, so one run serves them all).

    PYTHONPATH=. .venv/bin/python scripts/nab_htm.py --detector htm --jobs 2 --results DIR

Post-processings: ``numentaUnfiltered`` = ``Spatial(Likelihood(raw, probation))`` (Numenta's
arguments: learning floor(probation / 2), estimation the rest, 10-record average, refit every
100, log scale), ``numenta`` = ``numenta_scoring``, the same with Numenta's red-zone filter (a
tail probability below 1e-5 right after another is raised to 1e-3), ``nab`` = our
``nab_scoring``.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamwise.learn.anomaly.postprocess import Likelihood, Spatial, nab_scoring, numenta_scoring
from streamwise.learn.base import AnomalyDetector
from streamwise.learn.series import load_series, nab_root
from streamwise.nab.corpus import data_files, result_path, score_detector
from streamwise.nab.run import run_detector
from streamwise.nab.scorer import probation_length


class Replay(AnomalyDetector):
    """Replays recorded raw scores, one per record."""

    def __init__(self, raws: list[float]) -> None:
        self.raws, self.i, self.last_raw = raws, 0, 0.0

    def score_then_learn(self, x: Any) -> float:
        self.last_raw = self.raws[self.i]
        self.i += 1
        return self.last_raw

    def score_one(self, x: Any) -> float:
        return self.raws[self.i]

    def learn_one(self, x: Any, y: Any = None) -> None:
        self.score_then_learn(x)


POSTS: dict[str, Callable[[AnomalyDetector, int], AnomalyDetector]] = {
    "numentaUnfiltered": lambda d, p: Spatial(Likelihood(d, p)),
    "numenta": numenta_scoring,
    "nab": nab_scoring,
}


def rescore(results: Path, detector: str, files: list[str]) -> dict[str, dict[str, float]]:
    root = nab_root()
    out = {}
    for post, make in POSTS.items():
        name = f"{detector}-{post}"
        for file in files:
            series = load_series(file, root)
            with result_path(results, detector, file).open() as f:
                raws = [float(r["raw_score"]) for r in csv.DictReader(f)]
            wrapped = make(Replay(raws), int(probation_length(len(raws))))
            scores = [wrapped.score_then_learn({"timestamp": t, "value": v})
                      for t, v in zip(series.timestamps, series.values)]
            path = result_path(results, name, file)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["timestamp", "value", "anomaly_score"])
                for t, v, s in zip(series.timestamps, series.values, scores):
                    w.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), v, s])
        out[post] = score_detector(results, name) if len(files) == len(data_files(root)) \
            else {}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--detector", default="htm")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--results", default=None)
    ap.add_argument("--skip-run", action="store_true", help="rescore existing raw scores")
    args = ap.parse_args()
    results = Path(args.results or tempfile.mkdtemp(prefix="nab-"))
    files = data_files()
    info: dict[str, Any] = {}
    if not args.skip_run:
        info = run_detector(args.detector, results, jobs=args.jobs, progress=False)
    rows = rescore(results, args.detector, files)
    print(json.dumps({"detector": args.detector, "results": str(results), **info,
                      "scores": rows}, indent=1))


if __name__ == "__main__":
    main()
