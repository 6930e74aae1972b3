"""Run every configuration of the converter's zoo (tests/convert/zoo) and write the table.

    .venv/bin/python scripts/convert_zoo.py            # docs/convert_zoo.json + Markdown on stdout
    .venv/bin/python scripts/convert_zoo.py --md FILE  # the Markdown table into FILE too

Each configuration is converted with verification on (3 random chunkings, batch 2) in float64
and in float32; the table gives the outcome, the largest error relative to the output scale,
the algorithmic delay in input frames and the state of one stream in bytes.  A refusal or crash
shows the first line of its message.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tests.convert.zoo import ZOO  # noqa: E402
from tests.convert.zoo.models import outcome, params  # noqa: E402
from tests.convert.zoo.test_zoo import PENDING  # noqa: E402


def _first(message: str, width: int = 160) -> str:
    line = next((s.strip(" -") for s in message.splitlines()[1:] if s.strip()), message)
    line = line if "cannot stream exactly" in message.splitlines()[0] else message.splitlines()[0]
    line = re.sub(r"\S*site-packages/", "", line)  # where the package lies on this machine
    return (line[:width] + "...") if len(line) > width else line


def _cell(r: dict) -> str:
    return f"{r['max_error']:.1e}" if r["outcome"] == "exact" else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(ROOT / "docs" / "convert_zoo.json"))
    ap.add_argument("--md", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    rows = []
    for c in ZOO:
        r64, r32 = outcome(c, torch.float64), outcome(c, torch.float32)
        expected = ("refused" if c.refused else "exact")
        rows.append({"model": c.name, "family": c.family, "source": c.source, "spec": c.spec,
                     "shape": list(c.shape), "params": params(c), "expected": expected,
                     "pending": PENDING.get(c.name), "kwargs": c.kwargs,
                     "float64": r64, "float32": r32})
        print(f"{c.name}: {r64['outcome']}", file=sys.stderr)
    Path(args.json).write_text(json.dumps({"commit": commit, "rows": rows}, indent=1) + "\n")
    lines = ["| model | package, class | params | outcome | max error f64 / f32 | delay "
             "(frames) | state (bytes) |", "|---|---|---:|---|---|---:|---:|"]
    for row in rows:
        r64, r32 = row["float64"], row["float32"]
        if r64["outcome"] == "exact":
            what = "exact" + "".join(f" ({k} {v})" for k, v in row["kwargs"].items())
            tail = f"{_cell(r64)} / {_cell(r32)} | {r64['latency_frames']:g} | {r64['state_bytes']}"
        else:
            what = f"{r64['outcome']}: {_first(r64['error'])}"
            tail = "- | - | -"
        if row["pending"]:
            what += f" (**pending**: should be {row['expected']})"
        lines.append(f"| {row['model']} | {row['source']} | {row['params']} | "
                     f"{what.replace('|', '/')} | {tail} |")
    n = len(rows)
    ok = sum(r["pending"] is None for r in rows)
    lines.append("")
    lines.append(f"{ok} of {n} configurations meet their true outcome at commit {commit}; "
                 f"{n - ok} are pending.")
    should = [r for r in rows if r["expected"] == "exact"]
    exact = sum(r["float64"]["outcome"] == "exact" == r["float32"]["outcome"] for r in should)
    crashed = sum(r[d]["outcome"] == "crashed" for r in rows for d in ("float64", "float32"))
    lines.append(f"Of the {len(should)} that stream in principle, {exact} convert exactly in "
                 f"float64 and float32 ({exact / max(len(should), 1):.0%}); {crashed} runs "
                 "crashed.")
    table = "\n".join(lines)
    print(table)
    if args.md:
        Path(args.md).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
