"""``LMReader``: a language model as a system of the replay harness (``read``/``ask``/``poll``).

The model reads the word stream into the *input* segment of a dual cache (``live/loop.py``'s
``dual_cache``: input and output each with sinks + a window, group positions).  Three things
happen while it reads:

- **questions arrive asynchronously** (Flash-VStream): a question is answered on a *copy* of the
  cache (``copy.deepcopy``), so it never moves what later reads see.  Question and answer tokens
  go into the copy's *input* segment, right after the newest input: in the output segment their
  group positions would sit a fixed offset away from the input, ever further from the newest
  words as the stream grows (and behind them once the input count passes the offset;
  ``ask_segment='output'`` keeps that layout, compared in ``bench live-qa``);
- **when to speak** (VideoLLM-online): a forward question ("who will speak next?") waits; after
  every read a ``SpeakHead`` (``live/speak.py``) looks at the read's hidden states and, when it
  fires, the question is answered on a copy of the cache;
- **thinking** (AdaSR) writes notes into the output segment, where they outlive the input window
  (a summary of a page before it is evicted: consolidation by the model itself instead of
  FIFO-only eviction).  ``Think`` says when: ``"end"`` (never while reading: think only when
  asked), ``"every"`` (a note every ``page`` input tokens), ``"adaptive"`` (a note when the speak
  head says something happened, as many tokens as the budget allows: ``budget`` note tokens per
  1000 input tokens, accrued as the stream arrives);
- **consolidation without the model** (``pool``, Flash-VStream / Compressive Transformer):
  evicted input tokens are averaged, ``rate`` at a time, into a bounded memory that questions
  still attend to (``attention/cache/compress.py``).

Answers are closed-set, as StreamingBench's multiple choice: greedy decoding restricted to the
token sequences of the options (``choose``: a character among ``names``, or a number), so a
small model's answer is always well-formed and scoring is exact string equality.

Every call is timed by the harness's clock (``live/replay.py``), so notes and answers delay the
words behind them, and the trade-off (accuracy, delay, note tokens) is measured.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from streamwise.live.loop import dual_cache, feed
from streamwise.live.questions import Question, canonical
from streamwise.live.speak import SpeakHead

SYSTEM = ("<|im_start|>system\nYou listen to a novel read aloud and answer questions about it "
          "in a few words.<|im_end|>\n")
ASK = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\nThe answer is"
NOTE = "\nNote on what happened:"
NUMBERS = {"mentions": 1000, "chain": 1000, "chapter": 62}  # options 0 .. n-1


@dataclass(frozen=True)
class Think:
    """When to write notes: ``mode`` in ``end`` / ``every`` / ``adaptive``; ``tokens`` per note;
    ``page`` input tokens between notes (``every``); ``budget`` note tokens per 1000 input
    tokens (``adaptive``)."""

    mode: str = "end"
    tokens: int = 8
    page: int = 256
    budget: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in ("end", "every", "adaptive"):
            raise ValueError(f"Think.mode must be 'end', 'every' or 'adaptive', got {self.mode!r}")
        if self.tokens < 1 or self.page < 1 or self.budget < 0:
            raise ValueError("expected tokens >= 1, page >= 1 and budget >= 0")


def choose(logits: torch.Tensor, options: Sequence[Sequence[int]], stop: Sequence[int],
           feed: Callable[[int], torch.Tensor],
           prior: tuple[torch.Tensor, Callable[[int], torch.Tensor]] | None = None) -> list[int]:
    """Greedy decoding restricted to the options' token sequences (a trie walk): at each step
    the best next token among those that continue some option, or, where an option is already
    complete, one of ``stop`` (which ends it).  ``feed(token) -> logits`` advances the model.

    ``prior=(logits, feed)``: the same question without the stream (a content-free context),
    walked alongside; tokens are then ranked by ``log p(token | stream) - log p(token | no
    stream)`` (contextual calibration, Zhao et al. 2021): a name the model says whatever it read
    no longer wins by default."""
    def rank(logits: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        if base is None:
            return logits
        return torch.log_softmax(logits.double(), -1) - torch.log_softmax(base.double(), -1)

    out: list[int] = []
    score = rank(logits, None if prior is None else prior[0])
    while True:
        live = [o for o in options if len(o) >= len(out) and list(o[:len(out)]) == out]
        nxt = sorted({int(o[len(out)]) for o in live if len(o) > len(out)})
        complete = any(len(o) == len(out) for o in live) and bool(out)
        allowed = nxt + (list(stop) if complete else [])
        if not allowed:
            raise ValueError("expected at least one non-empty option")
        pick = max(allowed, key=lambda i: float(score[i]))
        if pick not in nxt:
            return out
        out.append(pick)
        if not any(len(o) > len(out) and int(o[len(out) - 1]) == pick for o in live):
            return out  # no longer option continues: done without feeding
        score = rank(feed(pick), None if prior is None else prior[1](pick))


class LMReader:
    """``LMReader(model, tokenizer, names)``: the harness's verbs over a causal LM; ``names``
    are the characters a name answer chooses from.  Without a head, forward questions are
    answered at once (a guess, scored as one).  ``record=True`` keeps each read's word range
    and features (to fit a ``SpeakHead``); ``pool=(rate, slots)``: the input segment's evicted
    tokens are pooled into a bounded memory (``dual_cache``); ``calibrate=True``: answers are
    ranked against the same question asked without the stream (``choose``'s ``prior``)."""

    def __init__(self, model: Any, tokenizer: Any, names: Sequence[str], input_window: int = 480,
                 output_window: int = 256, sinks: int = 4, head: SpeakHead | None = None,
                 think: Think | None = None, record: bool = False,
                 pool: tuple[int, int] | None = None, calibrate: bool = False,
                 ask_segment: str = "input") -> None:
        if not names:
            raise ValueError("expected at least one character name to choose answers from")
        if ask_segment not in ("input", "output"):
            raise ValueError(f"ask_segment must be 'input' or 'output', got {ask_segment!r}")
        self.model, self.tok = model, tokenizer
        self.cache = dual_cache(model, input_window, output_window, sinks, pool=pool)
        self.head, self.think, self.record = head, think or Think(), record
        self.ask_segment = ask_segment
        self.names = [canonical(n) for n in names]
        self.options = {"name": [self._ids(" " + n) for n in self.names]}
        for kind, n in NUMBERS.items():
            self.options[kind] = [self._ids(f" {i}") for i in range(n)]
        self.stop = sorted({self._ids(".")[0], self._ids("<|im_end|>")[0]})
        self.waiting: list[Question] = []
        self.answers: dict[int, str] = {}
        self.features: np.ndarray | None = None  # the last read's (for the speak head)
        self.fired = False  # whether the head fired on the last read
        self.bounds: list[tuple[int, int]] = []
        self.trace: list[np.ndarray] = []
        self.words_read = self.input_tokens = self.note_tokens = self.answer_calls = 0
        self.since_note, self.credit = 0, 0.0
        self.notes: list[str] = []
        self._forward(self._ids(SYSTEM), "output", self.cache)
        # calibration's content-free context: the instruction, no stream
        self.null = copy.deepcopy(self.cache) if calibrate else None

    def _ids(self, text: str) -> list[int]:
        return [int(t) for t in self.tok(text, add_special_tokens=False).input_ids]

    def _forward(self, ids: list[int], segment: str, cache: Any, hidden: bool = False
                 ) -> tuple[torch.Tensor, np.ndarray | None]:
        out = feed(self.model, cache, ids, segment, hidden)
        feat = None
        if hidden:
            h = out.hidden_states[-1][0].float()
            feat = torch.cat([h.mean(0), h[-1]]).numpy()
        return out.logits[0, -1], feat

    def _answer(self, text: str, kind: str) -> str:
        fork = copy.deepcopy(self.cache)  # the question never enters the reader's own cache
        ask = self._ids(ASK.format(q=text))
        logits, _ = self._forward(ask, self.ask_segment, fork)
        options = self.options.get(kind, self.options["name"])
        prior = None
        if self.null is not None:
            null = copy.deepcopy(self.null)
            prior = (self._forward(ask, self.ask_segment, null)[0],
                     lambda t: self._forward([t], self.ask_segment, null)[0])
        ids = choose(logits, options, self.stop,
                     lambda t: self._forward([t], self.ask_segment, fork)[0], prior)
        self.answer_calls += 1
        return self.tok.decode(ids).strip()

    def _note(self, tokens: int) -> None:
        logits, _ = self._forward(self._ids(NOTE), "output", self.cache)
        for _ in range(tokens):
            nxt = int(logits.argmax())
            self.notes.append(self.tok.decode([nxt]))
            logits, _ = self._forward([nxt], "output", self.cache)
        self.note_tokens += tokens

    # the harness's verbs ---------------------------------------------------------------
    def read(self, words: list[str]) -> None:
        if not words:
            return
        ids = self._ids(" " + " ".join(words))
        _, self.features = self._forward(ids, "input", self.cache, hidden=True)
        self.bounds.append((self.words_read, self.words_read + len(words)))
        self.words_read += len(words)
        if self.record and self.features is not None:
            self.trace.append(self.features)
        # the head looks once per read; notes and polls until the next read share its answer
        self.fired = (self.head is not None and self.features is not None
                      and bool(self.head.fires(self.features[None])[0]))
        self.input_tokens += len(ids)
        self.since_note += len(ids)
        t = self.think
        if t.mode == "every" and self.since_note >= t.page:
            self._note(t.tokens)
            self.since_note = 0
        elif t.mode == "adaptive":
            self.credit = min(self.credit + len(ids) * t.budget / 1000, 4.0 * t.tokens)
            if self.credit >= 1 and self.fired:
                n = int(min(t.tokens, self.credit))
                self._note(n)
                self.credit -= n

    def ask(self, q: Question) -> str | None:
        if q.kind == "speaker_next" and self.head is not None:
            self.waiting.append(q)
            return None
        text = q.text
        if q.kind == "speaker_next":  # no head: answer now (a guess)
            text = "Who was the last character named as speaking?"
        if q.kind == "chain":
            parent = self.answers.get(q.parent if q.parent is not None else -1, "")
            text = f"The character is {parent}. {q.text}"
        ans = self._answer(text, q.kind)
        self.answers[q.qid] = ans
        return ans

    def poll(self) -> list[tuple[int, str]]:
        if not self.waiting or not self.fired:
            return []
        ans = self._answer("Who was just named as speaking?", "speaker_next")
        ready = [(q.qid, ans) for q in self.waiting]
        self.waiting = []
        return ready
