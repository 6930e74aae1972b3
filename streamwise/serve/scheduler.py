"""Earliest-deadline-first, cross-session batching on one compute thread.

Every session's accepted chunks wait in its own FIFO.  Each tick takes the head chunk of every
waiting session, orders them by deadline (arrival + the session's latency budget), groups those
whose states can be stacked (``StateBatcher``) and steps each group in one call, earliest deadline
first.  Results are checkpointed (one store transaction per tick) before clients hear of them,
so every reply is durable.  Accepted chunks are never dropped: overload is handled by refusing
new sessions (``load``), not by shedding work already promised.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from streamwise.core.batch import StateBatcher
from streamwise.serve.errors import ServeError
from streamwise.serve.latency_model import LatencyModel
from streamwise.serve.onnx_runtime import OnnxBatcher
from streamwise.serve.sessions import Pending, Session
from streamwise.serve.store import StateStore

_LOAD_WINDOW = 2.0  # seconds of busy-time history kept for ``load``
STORE_RETRY_S = 0.5  # while the store fails, it is tried again at most this often


def _deliver(items: list[tuple[Any, Any]]) -> None:
    """Run the result callbacks of one tick (on their event loop)."""
    for done, r in items:
        if done is not None:
            done(r)


@dataclass
class TickStats:
    """What one tick did, for metrics."""

    batch_sizes: list[int] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # arrival -> result, per chunk
    missed: int = 0  # chunks finished after their deadline
    checkpoint_seconds: float = 0.0


class Scheduler:
    """Runs batched steps for all sessions on a dedicated thread."""

    def __init__(self, batchers: dict[str, StateBatcher | OnnxBatcher], store: StateStore, *,
                 max_batch: int = 64, batching: bool = True, checkpoint_every: int = 1,
                 batch_wait_s: float = 0.0, slo_batching: bool = False,
                 on_tick: Callable[[TickStats], None] | None = None,
                 on_store_failure: Callable[[], None] | None = None) -> None:
        self.batchers, self.store = batchers, store
        self.max_batch = max_batch if batching else 1
        self.batch_wait_s = batch_wait_s if batching else 0.0
        self.checkpoint_every = max(1, checkpoint_every)
        self.slo_batching = slo_batching
        self.latency = {name: LatencyModel() for name in batchers}  # fed by every step
        self.on_tick = on_tick
        self.lock = threading.RLock()  # guards every session's queue, outputs and counters
        self._cond = threading.Condition(self.lock)
        self._waiting: dict[str, Session] = {}  # sessions with queued chunks
        self._busy: deque[tuple[float, float]] = deque()  # (end, busy seconds) of recent ticks
        self._stop = False
        self.errors = 0  # ticks or steps that raised (see /healthz)
        self.store_failures = 0  # store calls that failed (checkpoints, opens, resumes)
        self.stale_writes = 0  # checkpoints refused: another replica had written a newer one
        self.store_ok = True  # the last store call succeeded
        self.store_error = ""  # what the last failure said
        self.on_store_failure = on_store_failure
        self._retry_at = 0.0  # while the store fails, the next write is tried no earlier
        self._dirty: dict[str, Session] = {}  # sessions whose newest checkpoint is not stored
        self._thread = threading.Thread(target=self._run, name="streamwise-scheduler", daemon=True)
        self._thread.start()

    # -- submitting --------------------------------------------------------------------------------
    def submit(self, session: Session, item: Pending) -> None:
        """Queue a checked chunk (its ``seq`` is the session's ``next_submit``)."""
        with self._cond:
            session.queue.append(item)
            session.hold(item.chunk.nbytes)
            self._waiting[session.id] = session
            self._cond.notify()

    @property
    def queue_depth(self) -> int:
        with self.lock:
            return sum(len(s.queue) for s in self._waiting.values())

    def load(self, window: float = 2.0) -> float:  # at most _LOAD_WINDOW
        """Fraction of the last ``window`` seconds the compute thread was busy."""
        now = time.monotonic()
        with self.lock:
            while self._busy and self._busy[0][0] < now - window:
                self._busy.popleft()
            return min(1.0, sum(b for _, b in self._busy) / window)

    def oldest_wait(self) -> float:
        """Seconds the oldest queued chunk has waited (0 when none waits)."""
        now = time.monotonic()
        with self.lock:
            heads = [s.queue[0].arrived for s in self._waiting.values() if s.queue]
        return now - min(heads) if heads else 0.0

    # -- the store's health ------------------------------------------------------------------------
    def store_failed(self, e: BaseException) -> None:
        """A store call raised: count it, and hold writes back for ``STORE_RETRY_S``."""
        with self.lock:
            self.store_failures += 1
            self.store_ok = False
            self.store_error = f"{type(e).__name__}: {e}"[:300]
            self._retry_at = time.monotonic() + STORE_RETRY_S
        if self.on_store_failure is not None:
            self.on_store_failure()

    def store_recovered(self) -> None:
        with self.lock:
            self.store_ok = True

    def store_due(self) -> bool:
        """Whether the store may be tried now (always while it works)."""
        return self.store_ok or time.monotonic() >= self._retry_at

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=10)

    # -- the compute thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stop:
                    if self._dirty and self.store_due():
                        break  # no chunk waits, but checkpoints the store refused are due
                    self._cond.wait(STORE_RETRY_S if self._dirty else None)
                if self._stop:
                    return
                if self._waiting:
                    self._gather()
                heads = [(s, s.queue[0]) for s in self._waiting.values()]
            t0 = time.monotonic()
            try:
                stats = self._tick(heads)
            except Exception:  # noqa: BLE001 - keep serving; the error is counted in /healthz
                self.errors += 1
                stats = TickStats()
            t1 = time.monotonic()
            with self.lock:
                self._busy.append((t1, t1 - t0))
                while self._busy[0][0] < t1 - _LOAD_WINDOW:  # bounded, even with no reader
                    self._busy.popleft()
            if self.on_tick is not None:
                self.on_tick(stats)

    def _gather(self) -> None:
        """SLO-aware wait (lock held): let more sessions' chunks arrive, so they share a step.

        Waits at most ``batch_wait_s`` after the oldest queued chunk arrived, never past a
        quarter of its remaining budget, and not at all once ``max_batch`` sessions wait.
        """
        if self.batch_wait_s <= 0:
            return
        heads = [s.queue[0] for s in self._waiting.values()]
        oldest = min(p.arrived for p in heads)
        earliest = min(p.deadline for p in heads)
        now = time.monotonic()
        until = min(oldest + self.batch_wait_s, now + (earliest - now) / 4)
        while len(self._waiting) < self.max_batch and not self._stop:
            left = until - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _tick(self, heads: list[tuple[Session, Pending]]) -> TickStats:
        stats = TickStats()
        heads.sort(key=lambda h: h[1].deadline)
        by_model: dict[str, list[tuple[Session, Pending]]] = {}
        for s, p in heads:
            by_model.setdefault(s.model, []).append((s, p))
        results: list[tuple[Session, Pending, Tensor | ServeError]] = []
        for model, items in by_model.items():
            batcher = self.batchers[model]
            good = []
            for s, p in items:  # re-check: a chunk that fails here fails alone
                try:
                    s.stream.check(p.chunk)
                    good.append((s, p))
                except ValueError as e:
                    results.append((s, p, ServeError("bad_shape", str(e))))
            for group in self._groups(batcher, good):
                t = time.perf_counter()
                try:  # step is pure: a failure leaves every stream of the group as it was
                    ys = batcher.step([s.stream for s, _ in group], [p.chunk for _, p in group])
                except Exception as e:  # noqa: BLE001 - one bad group must not stop the server
                    self.errors += 1
                    err = ServeError("internal", f"the model failed on this chunk: "
                                     f"{type(e).__name__}: {e}")
                    results += [(s, p, err) for s, p in group]
                    continue
                stats.step_seconds.append(time.perf_counter() - t)
                stats.batch_sizes.append(len(group))
                self.latency[model].observe(len(group), stats.step_seconds[-1])
                results += [(s, p, y) for (s, p), y in zip(group, ys)]
        self._commit(results, stats)
        return stats

    def _groups(self, batcher: StateBatcher | OnnxBatcher,
                items: list[tuple[Session, Pending]]) -> list[list[tuple[Session, Pending]]]:
        """Stackable groups of at most ``max_batch``, in order of their earliest deadline
        (``items`` come sorted by deadline, so each group's first item is its earliest)."""
        plan = batcher.plan([s.stream for s, _ in items], [p.chunk for _, p in items],
                            self.max_batch)
        groups = sorted(([items[i] for i in idx] for idx in plan), key=lambda g: g[0][1].deadline)
        if not self.slo_batching or not items:
            return groups
        return self._fit_deadlines(self.latency[items[0][0].model], groups)

    @staticmethod
    def _fit_deadlines(model: LatencyModel, groups: list[list[tuple[Session, Pending]]]
                       ) -> list[list[tuple[Session, Pending]]]:
        """SLO-aware sizes: cut each group (earliest deadline first) so that its predicted step,
        started after the steps before it, ends by the earliest deadline in it."""
        clock = time.monotonic()
        out: list[list[tuple[Session, Pending]]] = []
        for group in groups:
            while group:
                n = model.largest(len(group), group[0][1].deadline - clock)
                out.append(group[:n])
                clock += model.predict(n) or 0.0
                group = group[n:]
        return out

    def _commit(self, results: list[tuple[Session, Pending, Tensor | ServeError]],
                stats: TickStats) -> None:
        """Record outputs, checkpoint, then tell the waiting clients (durable before visible).

        If the store refuses the checkpoint, the outputs are still sent, but ``durable_seq``
        does not move: the sessions stay dirty and are written again once the store returns
        (tried at most every ``STORE_RETRY_S`` meanwhile, so a dead store does not slow steps).
        """
        due: dict[str, Session] = {}
        with self.lock:
            failed: list[tuple[Pending, ServeError]] = []
            for s, p, r in results:
                s.queue.popleft()
                s.hold(-p.chunk.nbytes)
                if isinstance(r, ServeError):  # the chunks queued behind it cannot follow it
                    failed += [(q, r) for q in s.queue]
                    s.hold(-sum(q.chunk.nbytes for q in s.queue))
                    s.queue.clear()
                if not s.queue:
                    self._waiting.pop(s.id, None)
                if isinstance(r, ServeError):
                    continue
                if p.seq > s.acked:  # a re-sent chunk the client already consumed is not kept
                    s.keep_output(p.seq, r)
                s.next_seq = p.seq + 1
                if s.next_seq % self.checkpoint_every == 0 or s.id in self._dirty:
                    due[s.id] = s
            for k in [k for k, v in self._dirty.items() if v.closed]:
                del self._dirty[k]  # closed since: its checkpoint is deleted, not rewritten
            if self.store_due():
                due = {**self._dirty, **due}
            else:  # the store failed a moment ago: do not wait on it again yet
                self._dirty.update(due)
                due = {}
            blobs = {k: s.to_blob(self.batchers[s.model].row_state(s.stream))
                     for k, s in due.items()}
            written = {k: s.next_seq - 1 for k, s in due.items()}
            progress = {k: s.progress for k, s in due.items()}
        t = time.perf_counter()
        stale: set[str] = set()
        if blobs:
            try:
                stale = self.store.put_many(blobs, progress)
                for k in stale:  # another replica wrote this session on: ours is behind
                    del written[k]
                self.stale_writes += len(stale)
                self.store_recovered()
            except Exception as e:  # noqa: BLE001 - outputs stay right; only durability lags
                self.errors += 1
                self.store_failed(e)
                written = {}  # durable_seq does not move: clients keep (and would re-send) chunks
        stats.checkpoint_seconds = time.perf_counter() - t
        now = time.monotonic()
        with self.lock:
            for k, s in due.items():
                if k in written:
                    s.durable_seq = max(s.durable_seq, written[k])
                    self._dirty.pop(k, None)
                elif k in stale:  # not retried: the store holds a newer checkpoint
                    self._dirty.pop(k, None)
                else:
                    self._dirty[k] = s
        calls: dict[Any, list[tuple[Any, Tensor | ServeError]]] = {}
        for q, err in failed:
            calls.setdefault(q.loop, []).append((q.done, err))
        for _, p, r in results:
            stats.latencies.append(now - p.arrived)
            stats.missed += now > p.deadline
            calls.setdefault(p.loop, []).append((p.done, r))
        for loop, items in calls.items():  # one wake-up per event loop per tick
            if loop is None:
                _deliver(items)
            else:
                loop.call_soon_threadsafe(_deliver, items)
