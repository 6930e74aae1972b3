"""One NAB-format series (a ``timestamp,value`` CSV under ``shared/data/nab/data``).

The single loader of these files: the anomaly benchmark (``streamwise.nab``), the forecasters
and the stream-x prediction task all read a series through ``load_series``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from streamwise.core.data_paths import shared_data


def nab_root() -> Path:
    """``../shared/data/nab`` beside the repository (``$STREAMWISE_SHARED`` overrides)."""
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


def load_series(name: str, root: Path | None = None, strict: bool = False) -> Series:
    """Read one data file; a bad row raises ValueError naming its line.

    Rows stay in file order, as NAB streams them.  A timestamp earlier than the one before it
    is counted in ``Series.out_of_order`` (NAB's own corpus has a few, around clock changes), or
    raises with ``strict``; repeated timestamps are allowed.  A missing file raises
    ``FileNotFoundError`` naming the path.
    """
    root = root or nab_root()
    back = 0
    path = root / "data" / name
    if not path.exists():
        raise FileNotFoundError(f"NAB series not found at {path}")
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
