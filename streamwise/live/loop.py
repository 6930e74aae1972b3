"""``LiveLoop``: a language model that keeps reading an input stream while it writes.

Input tokens arrive on their own clock (a book read aloud at ``rate`` tokens per second, a live
transcript).  Every model call takes *all* input tokens that arrived since the last call and the
last generated token, in one chunk:

    [in_k, in_k+1, ..., in_m, out_j]   ->   logits at out_j  ->  out_j+1

so ingestion never waits for an answer to finish (Think-as-You-See's decoupled input encoding,
Speak While Watching's parallel perception and generation).  Input and output live in one cache
as two segments (``Segments``: a dual cache), each with its own bounded rule (sinks + window),
and with group positions: input tokens count ``0, 1, 2, ...`` and output tokens ``offset,
offset + 1, ...`` (Group Position Encoding), so a burst of input neither moves the output's
positions nor pushes it out of the cache.  Group positions are absolute within each group: a
stream is limited to the model's position range per group (SmolLM2: 8192).

The loop is the mechanism; ``step`` is one call.  ``run`` drives it from a token source with
arrival times and reports, per call, what was ingested, when, and the output token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from streamwise.attention import Compress, Segments, Sinks, Window
from streamwise.hf import StreamingCache


@dataclass
class Call:
    """One model call: the input tokens it ingested, the output token it produced, its start and
    end on the loop's clock, and the arrival time of each ingested token."""

    ingested: list[int]
    arrivals: list[float]
    output: int
    start: float
    end: float


@dataclass
class LiveRun:
    calls: list[Call] = field(default_factory=list)

    @property
    def outputs(self) -> list[int]:
        return [c.output for c in self.calls]

    def ingestion_lags(self) -> list[float]:
        """Seconds from each input token's arrival to the end of the call that ingested it."""
        return [c.end - a for c in self.calls for a in c.arrivals]


def dual_cache(model: Any, input_window: int = 512, output_window: int = 256,
               sinks: int = 4, offset: int = 4096, pool: tuple[int, int] | None = None
               ) -> StreamingCache:
    """The loop's cache: input and output segments with their own sinks + window, group
    positions, the output counting from ``offset``; ``pool=(rate, slots)``: what leaves the
    input window is kept, ``rate`` tokens averaged into each of ``slots`` memory entries
    (``attention/cache/compress.py``) instead of dropped."""
    rules: dict[str, Window | Sinks] = {
        "input": Sinks(sinks, input_window, positions="absolute"),
        "output": Sinks(sinks, output_window, positions="absolute")}
    offsets = {"output": offset}
    if pool is None:
        return StreamingCache(model, Segments(rules, positions="group", offsets=offsets))
    return StreamingCache(model, Compress(rules, pool={"input": pool}, offsets=offsets))


def feed(model: Any, cache: StreamingCache, ids: Sequence[int], segment: str | list[str],
         hidden: bool = False) -> Any:
    """One forward of ``ids`` into ``cache``'s ``segment`` (a name, or one per token), with the
    mask and group positions the cache gives; the model's output (``hidden``: with hidden
    states)."""
    cache.segment = segment
    x = torch.tensor([list(ids)], dtype=torch.long)
    with torch.inference_mode():
        return model(input_ids=x, past_key_values=cache,
                     attention_mask=cache.attention_mask(len(ids)),
                     position_ids=cache.position_ids(len(ids)), output_hidden_states=hidden)


class LiveLoop:
    """``LiveLoop(model, prompt_ids)``; ``step(input_ids) -> next output id``.

    ``prompt_ids`` start the output segment (an instruction such as "Notes while reading:").
    ``pick(logits) -> id`` chooses the next output token (default: greedy).
    """

    def __init__(self, model: Any, prompt_ids: Sequence[int], cache: StreamingCache | None = None,
                 pick: Callable[[Tensor], int] | None = None) -> None:
        if not len(prompt_ids):
            raise ValueError("expected at least one prompt token to start the output segment")
        self.model = model
        self.cache = cache if cache is not None else dual_cache(model)
        self.pick = pick or (lambda logits: int(logits.argmax()))
        self.pending_output = list(prompt_ids)  # output tokens not yet in the cache
        self.calls = 0

    def step(self, input_ids: Sequence[int]) -> int:
        """One call: the arrived ``input_ids`` and the pending output token(s), in that order;
        returns the next output token (which is fed on the next call)."""
        ids = [*input_ids, *self.pending_output]
        names = ["input"] * len(input_ids) + ["output"] * len(self.pending_output)
        logits = feed(self.model, self.cache, ids, names).logits[0, -1]
        nxt = self.pick(logits)
        self.pending_output = [nxt]
        self.calls += 1
        return nxt


def run(loop: LiveLoop, tokens: Sequence[int], rate: float, calls: int,
        clock: Callable[[], float] = time.monotonic, read_every: int = 1,
        on_call: Callable[[Call], None] | None = None, until: float | None = None) -> LiveRun:
    """Drive ``loop`` for ``calls`` calls while ``tokens`` arrive at ``rate`` tokens/s from the
    first call on (token ``i`` at ``i / rate``).  Each call takes every token that has arrived;
    with nothing new, the call still writes (output never waits for input).  ``read_every=k``
    reads only on every ``k``-th call (the read-then-write baseline: input waits while the model
    writes); ``on_call`` sees each call as it ends (live printing); ``until``: stop once that
    many seconds have passed, even before ``calls``."""
    if rate <= 0 or calls < 1 or read_every < 1:
        raise ValueError(f"expected rate > 0, calls >= 1 and read_every >= 1, got {rate}, "
                         f"{calls}, {read_every}")
    out, t0, taken = LiveRun(), clock(), 0
    for n in range(calls):
        start = clock() - t0
        if until is not None and start >= until:
            break
        arrived = min(len(tokens), int(start * rate) + 1) if n % read_every == 0 else taken
        new = list(tokens[taken:arrived])
        arrivals = [i / rate for i in range(taken, arrived)]
        taken = arrived
        tok = loop.step(new)
        out.calls.append(Call(new, arrivals, tok, start, clock() - t0))
        if on_call is not None:
            on_call(out.calls[-1])
    return out
