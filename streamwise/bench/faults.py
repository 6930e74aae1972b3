"""Streams under SIGKILL: clients that resume, a killer that restarts the server, a ledger.

Each client is one application stream: it sends chunks on a real-time clock (after an outage it
sends what its source buffered meanwhile at once, as a live source would), reads outputs,
acknowledges every ``ack_every`` and, whenever the connection fails (the server is gone, a
socket closes, an output is 10 s late), reconnects with ``StreamClient.resume`` until a server
answers.  The killer SIGKILLs the server at the given times and restarts it on the same port
and store.  The ledger, per output seq, says what the application saw:

- *answered*: the first output for a seq;
- *re-delivered*: an output again for a seq received but not yet acknowledged (``resume``
  returns every unacknowledged output: at-least-once below the ack); it must equal the first;
- *duplicate*: an output for a seq already acknowledged (the protocol promises none);
- *lost*: a seq with no output, or outputs that differ from the offline ``forward``.

What each client was doing when a kill landed (sending, reading, acknowledging, resuming,
opening) is counted, so a run shows which paths the kills hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

RECOVERABLE_CODES = {"store_unavailable", "overloaded", "rate_limited"}


class Killable(Protocol):
    def kill(self) -> None: ...

    def start(self) -> Any: ...


@dataclass
class Ledger:
    """What one application stream received."""

    n: int  # chunks it sends
    outputs: dict[int, np.ndarray] = field(default_factory=dict)
    tail: np.ndarray | None = None
    stamps: list[tuple[float, float, bool]] = field(default_factory=list)  # at, latency, live
    redelivered: int = 0
    redelivered_at: list[float] = field(default_factory=list)  # perf_counter times
    duplicates: int = 0
    mismatched: int = 0  # re-delivered outputs that differ from the first
    resumes: int = 0
    errors: list[str] = field(default_factory=list)
    phase: str = "idle"

    @property
    def lost(self) -> int:
        return self.n - len([s for s in self.outputs if 0 <= s < self.n])


class _Stream:
    """One resilient application stream over ``StreamClient``."""

    def __init__(self, url: str, model: str, chunks: Sequence[np.ndarray], period_s: float,
                 ack_every: int, give_up_s: float) -> None:
        from streamwise.serve.client import StreamClient

        self.c = StreamClient(url)
        self.model, self.chunks, self.period = model, chunks, period_s
        self.ack_every, self.give_up_s = ack_every, give_up_s
        self.log = Ledger(len(chunks))
        self.sent_at: dict[int, float] = {}
        self.contig = -1  # every output up to here received

    def take(self, seq: int, y: np.ndarray, live: bool) -> None:
        log = self.log
        if seq <= self.c.acked:
            log.duplicates += 1
        elif seq in log.outputs:
            log.redelivered += 1
            log.redelivered_at.append(time.perf_counter())
            if not np.allclose(log.outputs[seq], y, atol=1e-5, rtol=0):
                log.mismatched += 1
        else:
            log.outputs[seq] = y
            now = time.perf_counter()
            if seq in self.sent_at:
                log.stamps.append((now, now - self.sent_at[seq], live))
        while self.contig + 1 in log.outputs:
            self.contig += 1

    async def _pump(self, t0: float) -> None:
        """Send what is due and read outputs until every chunk's output is in."""
        c, n = self.c, self.log.n

        async def sender() -> None:
            while c.next_seq < n:
                seq = c.next_seq
                delay = t0 + seq * self.period - time.perf_counter()
                if delay > 0:
                    self.log.phase = "idle"
                    await asyncio.sleep(delay)
                self.sent_at.setdefault(seq, time.perf_counter())
                self.log.phase = "send"
                await c.send(self.chunks[seq])

        async def reader() -> None:
            while self.contig < n - 1:
                self.log.phase = "recv"
                seq, y = await asyncio.wait_for(c.recv(), 10)
                self.take(seq, y, live=True)
                if self.contig >= c.acked + self.ack_every:
                    self.log.phase = "ack"
                    await c.ack(self.contig)

        tasks = [asyncio.create_task(sender()), asyncio.create_task(reader())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, t0: float) -> Ledger:
        import websockets

        from streamwise.serve.client import ServerError

        c, log = self.c, self.log
        opened = False
        down_since: float | None = None  # when the current outage began
        while True:
            try:
                if not opened:
                    log.phase = "open"
                    await c.open(self.model)
                    opened = True
                else:
                    log.phase = "resume"
                    outs = await asyncio.wait_for(c.resume(), 30)
                    log.resumes += 1
                    for s, y in outs:
                        self.take(s, y, live=False)
                down_since = None
                await self._pump(t0)
                log.phase = "close"
                _, log.tail = await asyncio.wait_for(c.close(), 30)
                log.phase = "done"
                return log
            except ServerError as e:
                if e.code not in RECOVERABLE_CODES:
                    log.errors.append(f"{log.phase}: {e}")
                    log.phase = "done"
                    return log
            except (TimeoutError, websockets.ConnectionClosed, websockets.InvalidHandshake,
                    OSError, EOFError):
                pass
            except RuntimeError as e:  # the client found a gap it cannot fill
                log.errors.append(f"{log.phase}: {e}")
                log.phase = "done"
                return log
            with contextlib.suppress(Exception):
                await c.disconnect()
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > self.give_up_s:
                log.errors.append(f"{log.phase}: no server answered for {self.give_up_s} s")
                log.phase = "done"
                return log
            log.phase = "resume" if opened else "open"
            await asyncio.sleep(0.1 + 0.3 * random.random())


@dataclass
class FaultRun:
    """The result of ``run_with_kills``: every stream's ledger and every kill."""

    ledgers: list[Ledger]
    kills: list[float]  # perf_counter times
    restarts_s: list[float]  # how long each restart took
    phases_hit: Counter[str]
    t0: float

    def totals(self) -> dict[str, Any]:
        ls = self.ledgers
        return {"streams": len(ls), "chunks": sum(x.n for x in ls),
                "answered": sum(len(x.outputs) for x in ls),
                "redelivered": sum(x.redelivered for x in ls),
                "duplicates": sum(x.duplicates for x in ls),
                "mismatched": sum(x.mismatched for x in ls),
                "lost": sum(x.lost for x in ls), "resumes": sum(x.resumes for x in ls),
                "errors": sum(len(x.errors) for x in ls),
                "error_kinds": sorted({e for x in ls for e in x.errors})[:5],
                "kills": len(self.kills), "phases_hit": dict(self.phases_hit),
                "restart_s_max": max(self.restarts_s, default=0.0)}


async def run_with_kills(server: Killable, url: str, model: str,
                         inputs: Sequence[Sequence[np.ndarray]], kill_at_s: Sequence[float],
                         period_s: float = 0.02, ack_every: int = 5, give_up_s: float = 120.0,
                         on_kill: Callable[[int], None] | None = None) -> FaultRun:
    """Stream ``inputs`` (one chunk list per client) while the server is killed at ``kill_at_s``
    (seconds after the common start) and restarted on the same store."""
    t0 = time.perf_counter() + 0.5
    streams = [_Stream(url, model, chunks, period_s, ack_every, give_up_s) for chunks in inputs]
    phases: Counter[str] = Counter()
    kills: list[float] = []
    restarts: list[float] = []

    async def killer() -> None:
        for i, at in enumerate(sorted(kill_at_s)):
            delay = t0 + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if all(s.log.phase == "done" for s in streams):
                return
            phases.update(s.log.phase for s in streams if s.log.phase != "done")
            kills.append(time.perf_counter())
            await asyncio.to_thread(server.kill)
            t = time.perf_counter()
            await asyncio.to_thread(server.start)
            restarts.append(time.perf_counter() - t)
            if on_kill is not None:
                on_kill(i)

    kt = asyncio.create_task(killer())
    ledgers = await asyncio.gather(*(s.run(t0) for s in streams))
    kt.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await kt
    return FaultRun(list(ledgers), kills, restarts, phases, t0)


def check_exact(run: FaultRun, inputs: Sequence[Sequence[np.ndarray]],
                offline: Callable[[np.ndarray], np.ndarray], atol: float = 1e-5) -> int:
    """Streams whose outputs (in seq order, then the tail) differ from the offline ``forward``
    of their whole input; each adds its missing or wrong outputs to the losses it reports."""
    bad = 0
    for log, chunks in zip(run.ledgers, inputs):
        if log.lost or log.tail is None:
            bad += 1
            continue
        got = np.concatenate([log.outputs[i] for i in range(log.n)] + [log.tail], -1)
        ref = offline(np.concatenate(list(chunks), -1))
        if got.shape != ref.shape or not np.allclose(got, ref, atol=atol, rtol=0):
            bad += 1
    return bad
