"""argparse type functions for the command line: numbers checked against their allowed range.

Each checked option fails at parse time with argparse's usage line and a message naming the
range, e.g. ``argument --chunk-ms: must be > 0, got 0``, before any model is built.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

Number = int | float

_OPS: dict[str, Callable[[Number, Number], bool]] = {
    ">": lambda v, b: v > b, ">=": lambda v, b: v >= b,
    "<": lambda v, b: v < b, "<=": lambda v, b: v <= b,
}


def number(kind: type[int] | type[float], *, gt: Number | None = None, ge: Number | None = None,
           lt: Number | None = None, le: Number | None = None) -> Callable[[str], Number]:
    """A type function parsing ``kind`` (finite, for floats) within the given bounds."""
    bounds = [(op, b) for op, b in ((">", gt), (">=", ge), ("<", lt), ("<=", le)) if b is not None]
    rule = " and ".join(f"{op} {b}" for op, b in bounds)
    noun = "an integer" if kind is int else "a finite number"

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {noun}{' ' + rule if rule else ''}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {noun}, got {text!r}")
        if not all(_OPS[op](value, b) for op, b in bounds):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    parse.__name__ = kind.__name__
    parse.allowed = rule or "any"  # type: ignore[attr-defined]  # read by the tests
    return parse


def shape(text: str) -> tuple[int, ...]:
    """``1,1,16000`` -> ``(1, 1, 16000)``; every size an integer >= 1."""
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(
            f"must look like 1,1,16000 (integers >= 1), got {text!r}")
    return dims


shape.allowed = "integers >= 1"  # type: ignore[attr-defined]

POSITIVE = number(float, gt=0)
NON_NEGATIVE = number(float, ge=0)
FINITE = number(float)
COUNT = number(int, ge=1)
SEED = number(int, ge=0)
PORT = number(int, ge=0, le=65535)
SINK_WINDOW = number(int, gt=4)  # KV cache entries: 4 attention sinks and at least one more
