"""The server's logic without a transport: open, push, ack, resume, close, limits, idle expiry.

HTTP, WebSocket and Ray Serve front ends all call this.  Every refusal is a ``ServeError`` raised
before anything changes, so a rejected chunk never touches its session (or any other).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from torch import Tensor

from streamwise.core.batch import StateBatcher
from streamwise.core.protocol import StreamingModule
from streamwise.serve.chunks import checked_chunk
from streamwise.serve.config import ServeConfig
from streamwise.serve.errors import ServeError
from streamwise.serve.limits import OpenRate
from streamwise.serve.metrics import Metrics
from streamwise.serve.model_info import describe
from streamwise.serve.onnx_runtime import OnnxBatcher, OnnxServed
from streamwise.serve.scheduler import Scheduler
from streamwise.serve.sessions import Account, Pending, Session, new_token
from streamwise.serve.store import StateStore


def _settle(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


class Service:
    """Holds the models, the sessions and the scheduler of one server process."""

    def __init__(self, models: dict[str, StreamingModule] | dict[str, OnnxServed]
                 | dict[str, StreamingModule | OnnxServed], store: StateStore,
                 config: ServeConfig | None = None) -> None:
        if not models:
            raise ValueError("a server needs at least one model")
        #: torch models, or ``OnnxServed`` under ``--runtime onnx`` (onnxruntime steps them)
        self.models: dict[str, StreamingModule | OnnxServed] = {
            k: m.eval() for k, m in models.items()}
        self.store = store
        self.config = config or ServeConfig()
        if self.config.shared_store:
            self.config.checkpoint_every = 1  # another replica may take over at any reply
        self.sessions: dict[str, Session] = {}
        self.accounts: dict[str, Account] = {}  # client -> what its sessions hold here
        self.opens = OpenRate(self.config.open_rate_per_s, self.config.open_burst)
        self._undeleted: set[str] = set()  # closed sessions whose checkpoint delete failed
        self._last_store_sweep = 0.0
        self.metrics = Metrics(lambda: len(self.sessions), lambda: self.scheduler.queue_depth,
                               lambda: self.scheduler.load(),
                               lambda: float(self.scheduler.store_ok))
        self.scheduler = Scheduler(
            {k: OnnxBatcher(m) if isinstance(m, OnnxServed) else StateBatcher(m)
             for k, m in self.models.items()}, store,
            max_batch=self.config.max_batch, batching=self.config.batching,
            batch_wait_s=self.config.batch_wait_ms / 1000, slo_batching=self.config.slo_batching,
            checkpoint_every=self.config.checkpoint_every, on_tick=self.metrics.observe_tick,
            on_store_failure=self.metrics.store_failures.inc)

    def shutdown(self) -> None:
        self.scheduler.stop()
        self.store.close()

    # -- errors ------------------------------------------------------------------------------------
    def refuse(self, code: str, message: str) -> ServeError:
        return self.count(ServeError(code, message))

    def store_down(self, e: BaseException | None = None) -> ServeError:
        """The refusal while the session store fails (``e``: the failure just seen)."""
        if e is not None:
            self.scheduler.store_failed(e)
        return self.refuse("store_unavailable", "the session store is failing ("
                           f"{self.scheduler.store_error}); new sessions and resumes are "
                           "refused until it recovers, open streams keep being served but "
                           "their durable_seq does not advance: retry later or elsewhere")

    def count(self, e: ServeError) -> ServeError:
        """Count a refusal once in ``streamwise_rejected_total``."""
        if not e.counted:
            self.metrics.rejected.labels(reason=e.code).inc()
            e.counted = True
        return e

    # -- metadata ----------------------------------------------------------------------------------
    def model_info(self, name: str) -> dict[str, Any]:
        return describe(name, self.models[name], self.config.sample_rate)

    def info(self) -> dict[str, Any]:
        return {"models": [self.model_info(k) for k in self.models],
                "limits": {"max_chunk_frames": self.config.max_chunk_frames,
                           "max_message_bytes": self.config.max_message_bytes,
                           "max_unacked": self.config.max_unacked,
                           "idle_timeout_s": self.config.idle_timeout_s}}

    # -- sessions ----------------------------------------------------------------------------------
    def open(self, model: str, client: str, budget_ms: float | None = None) -> tuple[Session, str]:
        """A new session on ``model``; returns it and its secret token (shown only once)."""
        if not isinstance(model, str) or model not in self.models:
            raise self.refuse("unknown_model", f"unknown model {model!r}; this server has "
                              f"{sorted(self.models)}")
        try:
            budget = self.config.default_budget_ms if budget_ms is None else float(budget_ms)
        except (TypeError, ValueError, OverflowError):
            budget = float("nan")
        if not 0 < budget <= 60_000:
            raise self.refuse("bad_request", f"budget_ms must be in (0, 60000], got {budget_ms}")
        if len(self.sessions) >= self.config.max_sessions:
            raise self.refuse("too_many_sessions", f"server is full ({self.config.max_sessions} "
                              "sessions); try again later")
        mine = self.accounts[client].sessions if client in self.accounts else 0
        if mine >= self.config.max_sessions_per_client:
            raise self.refuse("too_many_sessions", f"client {client} already has {mine} sessions "
                              f"(limit {self.config.max_sessions_per_client}); close some first")
        wait_s = self.opens.wait(client)
        if wait_s > 0:
            raise self.refuse("rate_limited", f"client {client} opens sessions faster than "
                              f"{self.config.open_rate_per_s:g}/s (burst "
                              f"{self.config.open_burst}); retry in {wait_s:.2f} s")
        if not self.scheduler.store_due():
            raise self.store_down()
        load = self.scheduler.load()
        wait = self.scheduler.oldest_wait()
        if load > self.config.max_load or wait > budget / 1000:
            raise self.refuse("overloaded", f"server is at capacity (load {load:.2f}, oldest "
                              f"chunk waiting {wait * 1000:.0f} ms); accepted streams keep "
                              "their service, new ones are refused: retry later or elsewhere")
        m = self.models[model]
        token, token_hash = new_token()
        sid = secrets.token_hex(8)
        stream = m.stream(1)  # finiteness is checked here, in numpy, before the stream sees it
        sess = Session(id=sid, token_hash=token_hash, model=model, client=client,
                       budget_ms=budget, stream=stream, channels=m.fixed_in_channels or 1)
        try:
            self.store.put_many({sid: sess.to_blob()})  # a session exists once it is durable
        except Exception as e:  # noqa: BLE001 - any store failure refuses the open
            raise self.store_down(e) from None
        self.scheduler.store_recovered()
        self._adopt(sess)
        return sess, token

    def _adopt(self, sess: Session) -> Session:
        """Hold ``sess`` in memory, its bytes counted on its client's account."""
        sess.account = self.accounts.setdefault(sess.client, Account())
        sess.account.bytes += sess.held_bytes
        sess.account.sessions += 1
        self.sessions[sess.id] = sess
        return sess

    def get(self, sid: str, token: str | None) -> Session:
        """The session ``sid`` if ``token`` is its own (loaded from the store after a restart)."""
        sess = self.sessions.get(sid)
        if sess is not None and self.config.shared_store:
            with self.scheduler.lock:
                if sess.attached == 0 and not sess.queue:  # another replica may have moved it on
                    self._drop(sid)
                    sess = None
        if sess is None:
            if not isinstance(sid, str) or len(sid) >= 64 or sid in self._undeleted:
                blob = None
            else:
                try:
                    blob = self.store.get(sid)
                except Exception as e:  # noqa: BLE001 - the store is down: say so
                    raise self.store_down(e) from None
            if blob is None:
                raise self.refuse("unknown_session", f"no session {sid!r} (closed, expired or "
                                  "never opened)")
            loaded = Session.from_blob(blob, self.models)
            if not loaded.token_ok(token):
                raise self.refuse("unauthorized", f"wrong token for session {sid}")
            sess = self.sessions.get(sid) or self._adopt(loaded)
        if not sess.token_ok(token):
            raise self.refuse("unauthorized", f"wrong token for session {sid}")
        sess.last_active = time.monotonic()
        return sess

    async def resume(self, sid: str, token: str | None, ack: int = -1
                     ) -> tuple[Session, list[tuple[int, Tensor]]]:
        """Reattach: acknowledge up to ``ack``; return the outputs after it, in order.

        Chunks still queued (sent on an older connection) are finished first, so their outputs
        are among those returned.  ``ack`` may lie beyond what a restarted server has computed
        (it lost work in a crash): the client re-sends those chunks and skips their outputs.
        """
        sess = self.get(sid, token)
        await self._drain(sess)
        with self.scheduler.lock:
            sess.ack(int(ack))
            return sess, sess.unacked()

    async def _drain(self, sess: Session) -> None:
        """Wait until ``sess`` has no queued chunk."""
        while True:
            with self.scheduler.lock:
                if not sess.queue:
                    return
            await asyncio.sleep(0.002)

    def _check_ack(self, sess: Session, ack: int) -> None:
        """An ack may not run ahead of the outputs this session has produced."""
        if ack > max(sess.acked, sess.next_seq - 1):
            raise self.refuse("bad_request", f"ack {ack} is beyond the last output "
                              f"({sess.next_seq - 1}): acknowledge only outputs received")

    def attach(self, sess: Session) -> None:
        """A connection holds ``sess``: keep it in memory until ``detach``."""
        with self.scheduler.lock:
            sess.attached += 1

    def detach(self, sess: Session) -> None:
        """The connection is gone; with a shared store, drop the copy once its queue is done."""
        with self.scheduler.lock:
            sess.attached -= 1
            idle = self.config.shared_store and sess.attached == 0 and not sess.queue
            if idle and self.sessions.get(sess.id) is sess:
                self._drop(sess.id)

    def ack(self, sess: Session, seq: int) -> None:
        """Acknowledge outputs up to ``seq``; with a shared store, durably (another replica may
        serve the next call)."""
        with self.scheduler.lock:
            self._check_ack(sess, int(seq))
            sess.ack(int(seq))
            if self.config.shared_store and not sess.queue:
                state = self.scheduler.batchers[sess.model].row_state(sess.stream)
                blob = sess.to_blob(state)
            else:
                return
        try:  # a lost ack costs only a re-delivery the client skips
            self.store.put_many({sess.id: blob}, {sess.id: sess.progress})
        except Exception as e:  # noqa: BLE001
            self.scheduler.store_failed(e)

    # -- pushing -----------------------------------------------------------------------------------
    def _chunk(self, sess: Session, data: Any) -> Tensor:
        """Check a ``[C, T]`` array against the session; return it as ``[1, C, T]``."""
        try:
            return checked_chunk(data, sess.channels, self.config, sess.stream.check)
        except ServeError as e:
            raise self.count(e) from None

    def _check_memory(self, sess: Session, data: Any) -> None:
        """A client's sessions together may hold at most ``max_client_bytes`` here."""
        held, limit = sess.account.bytes, self.config.max_client_bytes
        if held + getattr(data, "nbytes", 0) > limit:
            raise self.refuse("memory_limit", f"client {sess.client} holds {held >> 10} KiB in "
                              f"queued chunks and unacknowledged outputs over its sessions "
                              f"(limit {limit >> 10} KiB); acknowledge outputs or close "
                              "sessions first")

    def submit(self, sess: Session, seq: int, data: Any, ack: int | None,
               done: Callable[[Tensor | ServeError], None]) -> Tensor | None:
        """Check chunk ``seq`` and queue it; ``done(output | error)`` runs later on this loop.

        A repeated ``seq`` that is still unacknowledged returns its output now (idempotent
        retries; ``done`` is not called); a gap or a repeat of an acknowledged chunk is refused.
        Must be called from the event loop.  Raises ``ServeError`` before changing anything.
        """
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise self.refuse("bad_request", f"seq must be an integer >= 0, got {seq!r}")
        with self.scheduler.lock:
            if sess.closed:
                raise self.refuse("closed", f"session {sess.id} is closed")
            expected = sess.next_submit
            if seq < expected:
                if seq in sess.outputs:
                    return sess.outputs[seq]
                raise self.refuse("out_of_order", f"seq {seq} was already consumed"
                                  + (" and acknowledged" if seq <= sess.acked else
                                     " and is still queued") + f"; next expected is {expected}")
            if seq > expected:
                raise self.refuse("out_of_order", f"expected seq {expected}, got {seq}: "
                                  "chunks must arrive in order without gaps")
            if ack is not None:
                self._check_ack(sess, int(ack))
            self._check_memory(sess, data)
            after = max(sess.acked, -1 if ack is None else int(ack))
            held = len(sess.queue) + (sum(1 for k in sess.outputs if k > after)
                                      if len(sess.outputs) + len(sess.queue)
                                      >= self.config.max_unacked else 0)
            if held >= self.config.max_unacked:
                raise self.refuse("unacked", f"{held} outputs are unacknowledged "
                                  f"(limit {self.config.max_unacked}); send an ack first")
        x = self._chunk(sess, data)
        now = time.monotonic()
        with self.scheduler.lock:
            if seq != sess.next_submit:  # another connection of this session got there first
                raise self.refuse("out_of_order", f"expected seq {sess.next_submit}, got {seq}")
            if ack is not None:
                sess.ack(int(ack))
            sess.last_active = now
            item = Pending(seq, x, now + sess.budget_ms / 1000, now, done,
                           asyncio.get_running_loop())
            self.scheduler.submit(sess, item)
        return None

    async def push(self, sess: Session, seq: int, data: Any, ack: int | None = None
                   ) -> tuple[int, Tensor]:
        """``submit`` and wait for the output ``(seq, [1, C', T'])``."""
        fut: asyncio.Future[Tensor | ServeError] = asyncio.get_running_loop().create_future()
        ready = self.submit(sess, seq, data, ack, lambda r: _settle(fut, r))
        if ready is not None:
            return seq, ready
        r = await fut
        if isinstance(r, ServeError):
            raise self.count(r)
        return seq, r

    async def close(self, sess: Session) -> tuple[int, Tensor]:
        """Wait for the queued chunks, flush the lookahead tail, forget the session."""
        with self.scheduler.lock:
            if sess.closed:
                raise self.refuse("closed", f"session {sess.id} is already closed")
            sess.closed = True  # no new chunks from here on
        await self._drain(sess)

        m = self.models[sess.model]
        if isinstance(m, OnnxServed):
            with self.scheduler.lock:
                problem = m.close_problem(sess.stream)
                if problem is not None:
                    sess.closed = False  # nothing changed: the client may push more, then close
                    raise self.refuse("bad_request", problem)

        def flush() -> Tensor:
            with self.scheduler.lock:
                self.scheduler.batchers[sess.model].materialize(sess.stream)
                return sess.stream.close()

        tail = await asyncio.to_thread(flush)
        self.forget(sess.id)
        return sess.next_seq, tail

    async def peek(self, sess: Session) -> tuple[int, Tensor]:
        """The tentative tail: what ``close`` would emit now, the session unchanged.  Answered
        after the chunks queued before it; returns ``(outputs so far, [1, C', T'])``."""
        if isinstance(self.models[sess.model], OnnxServed):
            raise self.refuse("bad_request", "peek needs a torch model; this one runs on ONNX")
        if sess.closed:
            raise self.refuse("closed", f"session {sess.id} is closed")
        await self._drain(sess)

        def look() -> tuple[int, Tensor]:
            with self.scheduler.lock:
                batcher = self.scheduler.batchers[sess.model]
                assert isinstance(batcher, StateBatcher)  # ONNX sessions were refused above
                state = batcher.row_state(sess.stream) if batcher.is_resident(sess.stream) else None
                return sess.next_seq, sess.stream.peek(state)

        return await asyncio.to_thread(look)

    def forget(self, sid: str) -> None:
        """The session is over: out of memory and out of the store."""
        self._drop(sid)
        self._delete(sid)

    def _drop(self, sid: str) -> None:
        """Out of memory (its checkpoint stays): its client no longer holds its bytes."""
        sess = self.sessions.pop(sid, None)
        if sess is not None:
            sess.release()
            sess.account.sessions -= 1
            if sess.account.sessions <= 0:
                self.accounts.pop(sess.client, None)

    def _delete(self, sid: str) -> None:
        """Delete a checkpoint; if the store is down, remember to (the session stays gone)."""
        try:
            self.store.delete(sid)
            self._undeleted.discard(sid)
        except Exception as e:  # noqa: BLE001 - retried by ``reap_idle``
            self._undeleted.add(sid)
            self.scheduler.store_failed(e)

    def reap_idle(self) -> list[str]:
        """Expire sessions idle longer than ``idle_timeout_s`` (memory and store)."""
        limit = time.monotonic() - self.config.idle_timeout_s
        with self.scheduler.lock:
            old = [s.id for s in self.sessions.values()
                   if s.last_active < limit and not s.queue and s.attached == 0]
        for sid in old:
            self.forget(sid)
        if self._undeleted and self.scheduler.store_due():
            for sid in list(self._undeleted):
                self._delete(sid)
        now = time.monotonic()
        if now - self._last_store_sweep < min(30.0, self.config.idle_timeout_s):
            return old
        self._last_store_sweep = now
        # checkpoints of sessions nobody holds (a crashed server's, never resumed) expire too
        try:
            return old + self.store.expire(self.config.idle_timeout_s, set(self.sessions))
        except Exception as e:  # noqa: BLE001 - the next sweep tries again
            self.scheduler.store_failed(e)
            return old
