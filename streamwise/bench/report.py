"""What every benchmark does at the end: JSON, PNG, a printed table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_report(out: Path, stem: str, result: dict[str, Any],
                 plot: Callable[[Path], None], table: str) -> None:
    """Write ``out/stem.json`` and ``out/stem.png`` and print ``table``."""
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    plot(out / f"{stem}.png")
    print(table)
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")
