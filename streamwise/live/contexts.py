"""Stream2LLM: many live sessions whose contexts change, scheduled under one KV memory budget.

A live session (a transcript that a live ASR keeps appending to and correcting, a prompt with a
retrieved passage that is swapped) sends its *whole current context* with every request, then
asks for ``k`` generated tokens.  Most of the new context is usually the old one, so most of the
KV it needs is already cached.

1. ``Context`` holds one session's token ids and a transformers ``DynamicCache`` with the keys
   and values of the first ``cached`` of them.  ``update(new_ids)`` finds the longest common
   prefix (LCP) of ``new_ids`` with the cached ids and crops the cache to it: every key after the
   first changed token is invalid (it attended to the old token), every key before it is exact.
   An append keeps the whole old context; an edit in the middle keeps the part before the edit;
   a full replacement keeps nothing.  At least one token is always left to compute, because the
   request needs the logits at the last context token.  ``compute(model, n)`` runs the next
   ``n`` uncached ids through the model on top of the cache and returns their logits, so a
   prefill in chunks gives the same logits as one forward of the whole context.
2. ``Scheduler`` serves requests (a context update plus "generate ``k`` tokens", greedy) for many
   sessions.  Every ``step`` is one model call of one request:
   - *decode first*: a request that already has its first token gets its next one (one token,
     cheap, and it finishes a request);
   - otherwise the *shortest remaining prefill first* gets a chunk of at most ``chunk`` tokens.
     Shortest-first minimises mean time-to-first-token, and it is what makes reuse pay: a
     session whose update was an append has a few tokens to compute and is not stuck behind a
     from-scratch prefill.  Chunking bounds how long a long prefill blocks a newly arrived short
     one (one chunk).  Under sustained overload a long prefill can wait while shorter ones keep
     arriving (the usual price of shortest-first); this workload is bounded, so it finishes.
   A session serves its requests in arrival order, one at a time.
3. The budget: the sum of cached tokens over all sessions never exceeds ``budget``.  Before a
   call that would exceed it, sessions are *preempted* (their KV is dropped; they recompute from
   scratch when they next run), least-recently-used first, idle sessions (no request in flight)
   before active ones, never the session being served.  A request is refused unless its context
   plus its ``k`` tokens fits the budget alone, so every call can be made to fit.  Greedy output
   does not depend on preemption: a preempted request keeps its generated tokens and prefills
   them again with its context.
4. ``reuse=False`` is the baseline *full recompute*: every update drops the whole cache (and a
   finished request frees its KV, since nothing will reuse it); same scheduler otherwise.

Time is a simulated clock: requests arrive at given times, each model call advances the clock
by its measured duration (``timer``), and an idle scheduler jumps to the next arrival.  Each
request records its arrival, first-token and completion times.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from streamwise.attention import common_prefix


class Context:
    """One session's ids and the KV cache of the first ``cached`` of them."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.ids: list[int] = []
        self.cache: DynamicCache | None = None

    @property
    def cached(self) -> int:
        """Tokens whose keys and values are in the cache."""
        return 0 if self.cache is None else int(self.cache.get_seq_length())

    @property
    def pending(self) -> int:
        """Ids still to be run through the model."""
        return len(self.ids) - self.cached

    def crop(self, keep: int) -> None:
        """Keep the KV of the first ``keep`` cached tokens (0 drops the cache)."""
        if keep <= 0:
            self.cache = None
        elif keep < self.cached:
            assert self.cache is not None
            self.cache.crop(keep - self.cached)  # a negative count removes that many at the end

    def update(self, new_ids: Sequence[int], reuse: bool = True) -> int:
        """Make ``new_ids`` the context; keep the KV of its common prefix with the cached ids
        (at most ``len(new_ids) - 1``).  Returns the number of tokens kept."""
        new = [int(t) for t in new_ids]
        if not new:
            raise ValueError("update expected a non-empty list of token ids, got none")
        held = torch.tensor([self.ids[: self.cached]], dtype=torch.long)
        lcp = common_prefix(torch.tensor([new], dtype=torch.long), held)
        keep = min(lcp, len(new) - 1) if reuse else 0
        self.crop(keep)
        self.ids = new
        return keep

    def compute(self, model: Any, n: int) -> torch.Tensor:
        """Run the next ``n`` pending ids through ``model`` on top of the cache; their logits
        ``[n, vocab]``."""
        if not 0 < n <= self.pending:
            raise ValueError(f"compute expected 0 < n <= {self.pending} pending ids, got {n}")
        if self.cache is None:
            self.cache = DynamicCache(config=self.config)
        start = self.cached
        x = torch.tensor([self.ids[start:start + n]])
        with torch.no_grad():
            out = model(input_ids=x, past_key_values=self.cache, use_cache=True)
        return out.logits[0]


@dataclass
class Request:
    """A context update for ``session`` and ``k`` tokens to generate, with its times."""

    session: str
    ids: list[int]
    k: int
    arrival: float
    reused: int = 0             # cached tokens kept by the update (LCP)
    prefilled: int = 0          # tokens this request ran through the model (decodes included)
    generated: list[int] = field(default_factory=list)
    first_token: float | None = None
    done: float | None = None

    @property
    def ttft(self) -> float:
        assert self.first_token is not None
        return self.first_token - self.arrival


class Scheduler:
    """Requests of many sessions, one model call per ``step``, under a KV budget in tokens."""

    def __init__(self, model: Any, budget: int, chunk: int = 64, reuse: bool = True,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        if budget < 2:
            raise ValueError(f"budget expected >= 2 tokens, got {budget}")
        if chunk < 1:
            raise ValueError(f"chunk expected >= 1 token, got {chunk}")
        self.model, self.budget, self.chunk, self.reuse, self.timer = (
            model, budget, chunk, reuse, timer)
        self.vocab = int(model.config.vocab_size)
        self.sessions: dict[str, Context] = {}
        self.queues: dict[str, list[Request]] = {}
        self.last_used: dict[str, float] = {}
        self.active: dict[str, Request] = {}
        self.requests: list[Request] = []
        self.clock = 0.0
        self.preemptions = 0
        self.calls = 0

    # --- sessions and requests ------------------------------------------------------------
    def open(self, session: str) -> None:
        if session in self.sessions:
            raise ValueError(f"open expected a new session name, {session!r} is already open")
        self.sessions[session] = Context(self.model.config)
        self.queues[session] = []
        self.last_used[session] = self.clock

    def submit(self, session: str, ids: Sequence[int], k: int, arrival: float | None = None
               ) -> Request:
        """Queue a request; validated before any state changes."""
        if session not in self.sessions:
            raise ValueError(f"submit expected an open session, got unknown {session!r} "
                             f"(open: {sorted(self.sessions)})")
        new = [int(t) for t in ids]
        if not new:
            raise ValueError("submit expected a non-empty list of token ids, got none")
        if any(not 0 <= t < self.vocab for t in new):
            raise ValueError(f"submit expected token ids in [0, {self.vocab}), got "
                             f"{min(new)}..{max(new)}")
        if k < 1:
            raise ValueError(f"submit expected k >= 1 tokens to generate, got {k}")
        if len(new) + k > self.budget:
            raise ValueError(f"submit expected a context plus k tokens within the KV budget "
                             f"{self.budget}, got {len(new)} + {k}")
        when = self.clock if arrival is None else float(arrival)
        if self.requests and when < self.requests[-1].arrival:
            raise ValueError(f"submit expected arrivals in order, got {when} after "
                             f"{self.requests[-1].arrival}")
        req = Request(session, new, k, when)
        self.queues[session].append(req)
        self.requests.append(req)
        return req

    # --- the budget -----------------------------------------------------------------------
    def used(self) -> int:
        """Cached tokens over all sessions."""
        return sum(c.cached for c in self.sessions.values())

    def _make_room(self, session: str, n: int) -> None:
        """Preempt LRU sessions (idle first, never ``session``) until ``n`` more tokens fit."""
        others = [s for s in self.sessions if s != session and self.sessions[s].cached]
        others.sort(key=lambda s: (s in self.active, self.last_used[s]))
        for s in others:
            if self.used() + n <= self.budget:
                return
            self.sessions[s].crop(0)
            self.preemptions += 1
        assert self.used() + n <= self.budget, "a request larger than the budget was admitted"

    # --- one model call -------------------------------------------------------------------
    def _activate(self) -> None:
        for s, q in self.queues.items():
            if s not in self.active and q and q[0].arrival <= self.clock:
                req = self.active[s] = q.pop(0)
                req.reused = self.sessions[s].update(req.ids, self.reuse)

    def idle(self) -> bool:
        return not self.active and not any(self.queues.values())

    def step(self) -> Request | None:
        """One model call (a prefill chunk or a decode step); ``None`` when nothing is due."""
        self._activate()
        if not self.active:
            due = [q[0].arrival for q in self.queues.values() if q]
            if not due:
                return None
            self.clock = max(self.clock, min(due))   # idle: jump to the next arrival
            self._activate()
        decoding = [r for r in self.active.values() if r.generated]
        if decoding:
            req = min(decoding, key=lambda r: r.arrival)
        else:
            req = min(self.active.values(),
                      key=lambda r: (self.sessions[r.session].pending, r.arrival))
        ctx = self.sessions[req.session]
        n = min(self.chunk, ctx.pending)
        self._make_room(req.session, n)
        t0 = self.timer()
        logits = ctx.compute(self.model, n)
        self.clock += self.timer() - t0
        self.calls += 1
        req.prefilled += n
        self.last_used[req.session] = self.clock
        if ctx.pending == 0:                      # the logits at the last id: the next token
            token = int(logits[-1].argmax())
            req.generated.append(token)
            if req.first_token is None:
                req.first_token = self.clock
            if len(req.generated) < req.k:
                ctx.ids.append(token)
            else:
                req.done = self.clock
                del self.active[req.session]
                if not self.reuse:
                    ctx.crop(0)
        assert self.used() <= self.budget
        return req

    def run(self, on_step: Callable[[Request], None] | None = None) -> list[Request]:
        """Step until every submitted request is done."""
        while (req := self.step()) is not None:
            if on_step is not None:
                on_step(req)
        return self.requests
