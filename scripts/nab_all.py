"""Run every NAB detector over the whole corpus, score them, write JSON and a PNG.

    .venv/bin/python scripts/nab_all.py --out docs/nab --jobs 2

Every detector in ``streamwise.nab.run.DETECTORS``, the HTM variants taking nearly all the time
(the backtracking TM about 1.5x the sequence TM).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from streamwise.learn.series import nab_root
from streamwise.nab.corpus import score_detector
from streamwise.nab.plot import plot_file
from streamwise.nab.run import DETECTORS, run_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/nab")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--results", default=None, help="keep result files here (default: temp)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Path(args.results or tempfile.mkdtemp(prefix="nab-"))
    rows = {}
    for name in DETECTORS:
        info = run_detector(name, results, jobs=args.jobs)
        rows[name] = {**score_detector(results, name), "us_per_record": info["us_per_record"]}
        print(name, json.dumps(rows[name]))
    published = json.loads((nab_root() / "results" / "final_results.json").read_text())
    (out / "scores.json").write_text(json.dumps({"ours": rows, "published": published},
                                                indent=1))
    plot_file(results, list(DETECTORS), "realKnownCause/machine_temperature_system_failure.csv",
              out / "machine_temperature.png")
    print(f"wrote {out / 'scores.json'} and {out / 'machine_temperature.png'}; "
          f"results in {results}")


if __name__ == "__main__":
    main()
