"""A refusal a user can act on: the reasons grouped, the model's own reasons first, short paths.

A reason is the *model's* when the model itself reads the whole sequence (a norm over time, a
bidirectional RNN, a concatenation along time): no stream can compute it, whatever the code.  It
is a *converter* limit when streamwise cannot follow the Python (an ``if`` on the length, an op
it does not recognise): the model may stream once that code is written another way.  Problems
with the same why and fix are one reason, listed with every place it occurs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MODEL, CONVERTER = "model", "converter"

#: parts of ``why`` texts (streamwise/convert and layers/unstreamable.CANNOT_STREAM) naming an op
#: that needs the whole sequence; every other reason is a converter limit
MODEL_REASONS = (
    "normalizes over time",  # GroupNorm, LayerNorm over time, softmax over time
    "normalizes each channel by",  # InstanceNorm
    "over the whole sequence",  # attention
    "over the whole time axis",
    "fraction of the whole sequence",  # adaptive pools
    "averages over all of time",
    "reduces over time",  # a statistic of the whole sequence, gLN, einops reduce
    "a Linear layer over the time axis",
    "a linear map over the time axis",
    "reverses time",
    "a dual-path model's intra-chunk RNN",
    "rearranges time together with another axis",
    "is bidirectional",
    "resamples to a fixed size",
    "concatenates along time",
    "reads the far end",  # circular padding of a conv
    "pads time with mode 'circular'",
    "the last window depends on the end",  # ceil_mode
    "align_corners=True",
    "indexes one time frame",
)

#: how a ``ConversionError`` without problems starts, and whose failure that is
_MESSAGE_KINDS = (("the model fails on an input", MODEL),)

CONVERTER_NOTE = ("a converter limit is code streamwise cannot follow, not a reason of the "
                  "model: written as its fix says, the model may stream")
_LABEL = {MODEL: "in the model", CONVERTER: "converter limit"}
_PLACES = 3  # places named per reason; the rest are counted
_PATH = re.compile(r"(?<![\w./-])(/[^\s:`'\"(),]+\.py)")
_SITE = re.compile(r".*/(?:site|dist)-packages/")


class _Problem(Protocol):
    where: str
    why: str
    fix: str
    kind: str


def classify(why: str) -> str:
    """``"model"`` where ``why`` names an op that needs the whole sequence, else ``"converter"``."""
    return MODEL if any(r in why for r in MODEL_REASONS) else CONVERTER


def message_kind(message: str) -> str:
    """Whose failure a ``ConversionError`` without problems reports (tracing stops: the
    converter's)."""
    return next((k for start, k in _MESSAGE_KINDS if message.startswith(start)), CONVERTER)


def short_path(filename: str, cwd: str | None = None) -> str:
    """An installed package's file from its package (``encodec/modules/conv.py``), a file under
    the working directory relative to it, any other file as it is."""
    site = _SITE.match(filename)
    if site:
        return filename[site.end():]
    cwd = cwd or os.getcwd()
    if filename.startswith(cwd.rstrip("/") + "/"):
        return os.path.relpath(filename, cwd)
    return filename


def short_paths(text: str) -> str:
    """``text`` with every absolute ``.py`` path in it shortened by ``short_path``."""
    return _PATH.sub(lambda m: short_path(m.group(1)), text)


@dataclass(frozen=True)
class Place:
    """A problem's ``where`` taken apart: node, op, module path and class, source line."""

    node: str
    op: str
    module: str
    cls: str
    source: str

    def common(self) -> str:
        """What places of one reason share: the op and module class, the source line."""
        if self.op and self.cls:
            what = f"{self.op} in {self.cls}"
        else:
            what = self.op or (f"module ({self.cls})" if self.cls else "")
        return ", ".join(s for s in (what, self.source) if s)


_WHERE = re.compile(r"node `(?P<node>[^`]*)`, (?P<what>.*?)(?:, (?P<src>[^\s,]+:\d+ `.*`))?$")
_MODULE = re.compile(r"(?:^| in )module `(?P<path>[^`]*)` \((?P<cls>[^)]*)\)$")


def place(where: str) -> Place:
    """``where`` (as ``trace.where`` writes it) taken apart; other texts are one module path."""
    m = _WHERE.match(where)
    if m is None:
        return Place("", "", where, "", "")
    what = m["what"]
    mod = _MODULE.search(what)
    op = what[:mod.start()] if mod else what
    return Place(m["node"], op, mod["path"] if mod else "", mod["cls"] if mod else "",
                 m["src"] or "")


def _places(wheres: Sequence[str]) -> str:
    """One reason's places: the full ``where`` of one, the shared part and the list of many."""
    if len(wheres) == 1:
        return wheres[0]
    parts = [place(w) for w in wheres]
    shared = {p.common() for p in parts}
    names = [p.module or p.node or w for p, w in zip(parts, wheres)]
    if len(shared) > 1:  # different ops share why and fix: name each op too
        names = [n if p.op.strip("`.() ") in ("", n) else f"{n} ({p.op.strip()})"
                 for n, p in zip(names, parts)]
    listed = ", ".join(names[:_PLACES])
    more = f" (+{len(names) - _PLACES} more)" if len(names) > _PLACES else ""
    head = f"{shared.pop()}, " if len(shared) == 1 and next(iter(shared)) else ""
    return f"{head}{len(wheres)} places: {listed}{more}"


@dataclass
class Reason:
    """Problems with one why and fix: one line of the refusal."""

    kind: str
    why: str
    fix: str
    wheres: list[str]

    def lines(self) -> list[str]:
        return [f"  - {_LABEL[self.kind]}: {_places(self.wheres)}: {self.why}",
                f"    fix: {self.fix}"]


def group(problems: Sequence[_Problem]) -> list[Reason]:
    """One ``Reason`` per distinct why and fix, the model's own first, each in first-seen order."""
    reasons: dict[tuple[str, str, str], Reason] = {}
    for p in problems:
        key = (p.kind, p.why, p.fix)
        if key not in reasons:
            reasons[key] = Reason(p.kind, p.why, p.fix, [])
        reasons[key].wheres.append(p.where)
    return sorted(reasons.values(), key=lambda r: r.kind != MODEL)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def summary(problems: Sequence[_Problem]) -> str:
    """``"2 reasons in the model itself, 1 converter limit"``."""
    reasons = group(problems)
    own = sum(r.kind == MODEL for r in reasons)
    parts = []
    if own:
        parts.append(_count(own, "reason") + " in the model itself")
    if len(reasons) > own:
        parts.append(_count(len(reasons) - own, "converter limit"))
    return ", ".join(parts)


def refusal(header: str, problems: Sequence[_Problem]) -> str:
    """The refusal: ``header`` with the summary, then each reason and its fix."""
    reasons = group(problems)
    header = re.sub(r"\s*\(\d+ op\(s\)\):?$", "", header.rstrip(":"))
    lines = [f"{header}: {summary(problems)} ({_count(len(problems), 'op')})"]
    lines += [ln for r in reasons for ln in r.lines()]
    if any(r.kind == CONVERTER for r in reasons):
        lines.append(f"  ({CONVERTER_NOTE})")
    return "\n".join(lines)


class _Refusal(Protocol):
    @property
    def problems(self) -> Sequence[_Problem]: ...


def refused_body(e: _Refusal) -> str:
    """What the CLI prints under its verdict: each reason with its fix, or the one message of a
    refusal without problems (tracing stopped), labelled whose it is."""
    text = str(e)
    if e.problems:
        return text.split("\n", 1)[1] if "\n" in text else text
    if text.startswith("verification failed"):  # a defect, not a reason: the report follows
        return text
    kind = message_kind(text)
    body = f"  - {_LABEL[kind]}: {text}"
    if kind == CONVERTER and text.startswith("cannot trace"):
        body += ("\n  (tracing stops at the first line it cannot follow: once that line is "
                 "rewritten, further reasons may follow, the model's own included)")
    return body
