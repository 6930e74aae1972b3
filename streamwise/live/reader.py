"""``TextReader``: a rule-based system for the replay harness, the upper bound of perception.

It reads the stream with the same rules the questions were made from (the attribution pattern,
whole-word mentions, chapter headings), so with unbounded memory it answers every question right
and its score measures the harness itself: delays are its compute, and forward answers wait for
their evidence.  With ``window=W`` it keeps only the last ``W`` words and re-derives every answer
from them, as a bounded context without memory consolidation would: what scrolled out is lost.
A chain question is answered from the reader's own earlier answer, right or wrong.
"""

from __future__ import annotations

import re
from collections import Counter

from streamwise.live.questions import ATTRIBUTION, Question, bare, canonical


class TextReader:
    """``read`` / ``ask`` / ``poll`` (``live/replay.py``) over a word stream."""

    def __init__(self, window: int | None = None) -> None:
        if window is not None and window < 8:
            raise ValueError(f"window must be None or >= 8 words, got {window}")
        self.window = window
        self.words: list[str] = []
        self.counts: Counter[str] = Counter()
        self.speakers: list[str] = []  # every attribution detected, in order (a log, not memory)
        self.chapter = 0
        self.waiting: list[tuple[Question, int]] = []  # forward questions, speakers seen by then
        self.answers: dict[int, str] = {}

    def read(self, words: list[str]) -> None:
        before = self.words[-30:]
        prev = self.words[-1] if self.words else ""
        for w in words:  # a heading may straddle reads or sit inside one
            if self.window is None:
                self.counts[bare(w)] += 1
            if prev == "Chapter" and w.isdigit():
                self.chapter = int(w)
            prev = w
        self.words += words
        if self.window is not None:
            self.words = self.words[-self.window:]
        # attributions that end in the new words
        tail = before + list(words)
        text, cut = " ".join(tail), len(" ".join(before))
        for m in ATTRIBUTION.finditer(text):
            if m.end() > cut:
                self.speakers.append(canonical(m.group(1)))

    def _count(self, name: str) -> int:
        if self.window is None:
            return self.counts[name]
        return sum(bare(w) == name for w in self.words)

    def _speakers_in_view(self) -> list[str]:
        if self.window is None:
            return self.speakers
        found = ATTRIBUTION.findall(" ".join(self.words))
        return [canonical(s) for s in found]

    def ask(self, q: Question) -> str | None:
        ans: str | None
        if q.kind == "speaker_last":
            seen = self._speakers_in_view()
            ans = seen[-1] if seen else "unknown"
        elif q.kind == "mentions":
            name = re.search(r"the name (\w+)", q.text)
            ans = str(self._count(name.group(1))) if name else "0"
        elif q.kind == "chapter":
            heads = [w for p, w in zip(self.words, self.words[1:]) if p == "Chapter"
                     and w.isdigit()]
            ans = str(self.chapter if self.window is None else int(heads[-1]) if heads else 0)
        elif q.kind == "chain":
            parent = self.answers.get(q.parent if q.parent is not None else -1, "")
            ans = str(self._count(parent.split()[-1])) if parent else "0"
        elif q.kind == "speaker_next":
            self.waiting.append((q, len(self.speakers)))
            return None
        else:
            raise ValueError(f"unknown question kind {q.kind!r}")
        self.answers[q.qid] = ans
        return ans

    def poll(self) -> list[tuple[int, str]]:
        ready = [(q.qid, self.speakers[mark]) for q, mark in self.waiting
                 if len(self.speakers) > mark]
        self.waiting = [(q, mark) for q, mark in self.waiting if len(self.speakers) <= mark]
        return ready
