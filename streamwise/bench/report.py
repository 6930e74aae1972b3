"""What every benchmark does at the end: JSON, PNG, a printed table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def flatness(curve: dict[str, list[float]], state_key: str, start: int = 1000
             ) -> dict[str, float]:
    """How flat a per-token curve is from token ``start``: median latency of the last tenth over
    the first tenth (robust to bursts of load from other jobs), max/min of the bucket medians (not
    robust), and the state at the end over the state at ``start``."""
    i = next((k for k, t in enumerate(curve["token"]) if t >= start), 0)
    ms, st = curve["ms_p50"][i:], curve[state_key][i:]
    tenth = max(1, len(ms) // 10)
    return {"latency_last_over_first": float(np.median(ms[-tenth:]) / np.median(ms[:tenth])),
            "latency_max_over_min": max(ms) / min(ms),
            "state_end_over_start": st[-1] / st[0]}


def write_report(out: Path, stem: str, result: dict[str, Any],
                 plot: Callable[[Path], None], table: str) -> None:
    """Write ``out/stem.json`` and ``out/stem.png`` and print ``table``."""
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    plot(out / f"{stem}.png")
    print(table)
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")
