"""Replay a word stream with timestamped questions and score the answers when they are emitted.

Words arrive at ``rate`` words per second (word ``i`` at ``(i + 1) / rate`` s); questions arrive
at their word index.  The system has one worker: each call (``read`` the words that arrived,
``ask`` a question, ``poll`` for deferred answers) starts when both its input has arrived and the
previous call is done, and lasts its measured compute (times ``compute_scale``); an answer is
emitted when its call ends (``core/emission.py``'s clock, per call instead of per chunk).

Reads hold ``batch`` words, except that a question cuts the read it falls in: when a question
arrives after word ``t - 1``, the system has read exactly words ``..t - 1`` (what has arrived)
before it is asked, whatever the batch.

A system implements three verbs:

- ``read(words)``: take the words that arrived (ingestion never waits for an answer: calls are
  made in arrival order, so a slow answer delays the words behind it, which is measured);
- ``ask(question) -> str | None``: answer now, or ``None`` to answer later (forward questions);
- ``poll() -> list[(qid, answer)]``: answers of earlier questions that are ready now.

Scoring (StreamEQA / DAMO-StreamNet): an answer is correct when it equals the truth; its delay is
the emission time minus the time the answer became knowable (the question's time, or for a
forward question the time its evidence arrived).  A forward answer emitted before its evidence is
a guess, reported apart.  Every question is scored; one never answered counts as wrong.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from streamwise.live.questions import Question


class System(Protocol):
    def read(self, words: list[str]) -> None: ...
    def ask(self, question: Question) -> str | None: ...
    def poll(self) -> list[tuple[int, str]]: ...


@dataclass
class Clock:
    """One worker on a real-time clock: a call starts at ``max(ready, done)``."""

    compute_scale: float = 1.0
    timer: Callable[[], float] = time.perf_counter
    done: float = 0.0
    busy: float = 0.0

    def run(self, ready: float, fn: Any, *args: Any) -> tuple[Any, float]:
        t0 = self.timer()
        out = fn(*args)
        spent = (self.timer() - t0) * self.compute_scale
        self.busy += spent
        self.done = max(ready, self.done) + spent
        return out, self.done


@dataclass
class Replay:
    """The outcome: per question (emitted time, answer), and per read its words and its
    ingestion lag."""

    answers: dict[int, tuple[float, str]] = field(default_factory=dict)
    reads: list[tuple[int, int]] = field(default_factory=list)  # word ranges [first, stop)
    read_lag_s: list[float] = field(default_factory=list)
    busy_s: float = 0.0
    seconds: float = 0.0


def replay(words: Sequence[str], questions: Sequence[Question], system: System, rate: float,
           compute_scale: float = 1.0, batch: int = 1,
           timer: Callable[[], float] = time.perf_counter, start: int = 0) -> Replay:
    """Feed ``words`` in reads of ``batch`` words at ``rate`` words/s, asking each question at its
    word index and polling after every read; return what was emitted, and when (``timer``
    measures each call's compute).  ``start``: the system joins the stream at that word (the
    words before it are never read; the clock still counts from word 0)."""
    if rate <= 0 or batch < 1 or compute_scale < 0 or not 0 <= start <= len(words):
        raise ValueError(f"expected rate > 0, batch >= 1, compute_scale >= 0 and 0 <= start <= "
                         f"{len(words)}, got {rate}, {batch}, {compute_scale}, {start}")
    by_t: dict[int, list[Question]] = {}
    for q in questions:
        if not start <= q.t <= len(words):
            raise ValueError(f"question {q.qid} at word {q.t}: expected {start} <= t <= "
                             f"{len(words)}")
        by_t.setdefault(q.t, []).append(q)
    clock, out = Clock(compute_scale, timer), Replay()

    def emit(pairs: list[tuple[int, str]], at: float) -> None:
        for qid, ans in pairs:
            out.answers.setdefault(qid, (at, ans))

    def ask_at(t: int) -> None:
        for q in by_t.get(t, []):
            ans, at = clock.run(t / rate, system.ask, q)
            if ans is not None:
                emit([(q.qid, ans)], at)

    ask_at(start)
    times = sorted(by_t)
    first = start
    while first < len(words):
        stop = min(first + batch, len(words))
        # a question inside the read cuts it: the system reads what has arrived, then answers
        i = bisect.bisect_right(times, first)
        if i < len(times) and times[i] < stop:
            stop = times[i]
        arrived = stop / rate
        _, at = clock.run(arrived, system.read, list(words[first:stop]))
        out.reads.append((first, stop))
        out.read_lag_s.append(at - arrived)
        pending, at = clock.run(arrived, system.poll)
        emit(pending, at)
        for t in range(first + 1, stop + 1):
            ask_at(t)
        first = stop
    pending, at = clock.run(len(words) / rate, system.poll)
    emit(pending, at)
    out.busy_s, out.seconds = clock.busy, (len(words) - start) / rate
    return out


def score(questions: Sequence[Question], result: Replay, rate: float) -> dict[str, Any]:
    """Accuracy, guesses and delays per question kind (and over all)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for q in questions:
        knowable = max(q.t, q.evidence) / rate
        at, ans = result.answers.get(q.qid, (float("inf"), ""))
        rows.setdefault(q.kind, []).append({
            "correct": ans.strip() == q.answer, "answered": q.qid in result.answers,
            "guess": at < knowable, "delay_s": at - knowable})
    out: dict[str, Any] = {}
    every = [r for group in rows.values() for r in group]
    for kind, rs in [*rows.items(), ("all", every)]:
        delays = [r["delay_s"] for r in rs if r["answered"] and not r["guess"]]
        out[kind] = {"questions": len(rs), "accuracy": float(np.mean([r["correct"] for r in rs])),
                     "unanswered": sum(not r["answered"] for r in rs),
                     "guesses": sum(r["guess"] for r in rs),
                     "delay_s_p50": float(np.median(delays)) if delays else float("nan"),
                     "delay_s_p90": float(np.percentile(delays, 90)) if delays else float("nan")}
    lag = np.asarray(result.read_lag_s) if result.read_lag_s else np.zeros(1)
    out["ingestion"] = {"lag_s_p50": float(np.median(lag)), "lag_s_max": float(lag.max()),
                        "busy_fraction": result.busy_s / max(result.seconds, 1e-12)}
    return out
