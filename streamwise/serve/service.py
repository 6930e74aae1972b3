"""The server's logic without a transport: open, push, ack, resume, close, limits, idle expiry.

HTTP, WebSocket and Ray Serve front ends all call this.  Every refusal is a ``ServeError`` raised
before anything changes, so a rejected chunk never touches its session (or any other).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import Tensor

from streamwise.core.batch import StateBatcher
from streamwise.core.protocol import StreamingModule
from streamwise.serve.errors import ServeError
from streamwise.serve.metrics import Metrics
from streamwise.serve.onnx_runtime import OnnxBatcher, OnnxServed
from streamwise.serve.scheduler import Scheduler
from streamwise.serve.sessions import Pending, Session, new_token
from streamwise.serve.store import StateStore


def _settle(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


@dataclass
class ServeConfig:
    """Limits and knobs; the defaults suit 16 kHz audio in 10-100 ms chunks."""

    max_sessions: int = 2000
    max_sessions_per_client: int = 256
    max_chunk_frames: int = 48_000
    max_message_bytes: int = 1 << 20
    max_unacked: int = 1024  # outputs a client may leave unacknowledged
    idle_timeout_s: float = 600.0
    default_budget_ms: float = 100.0
    max_batch: int = 64
    batching: bool = True
    batch_wait_ms: float = 10.0  # a tick waits this long for more sessions (within budgets)
    checkpoint_every: int = 1  # chunks between checkpoints (1: every reply is durable)
    max_load: float = 0.9  # refuse new sessions above this compute-thread load
    check_finite: bool = True
    sample_rate: int | None = 16_000  # for clients and the browser page (None: not audio)
    shared_store: bool = False  # several replicas share the store: it, not memory, is the truth
    server_id: str = ""  # names this process/replica in replies (Ray Serve sets it)


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
        self._last_store_sweep = 0.0
        self.metrics = Metrics(lambda: len(self.sessions), lambda: self.scheduler.queue_depth,
                               lambda: self.scheduler.load())
        self.scheduler = Scheduler(
            {k: OnnxBatcher(m) if isinstance(m, OnnxServed) else StateBatcher(m)
             for k, m in self.models.items()}, store,
            max_batch=self.config.max_batch, batching=self.config.batching,
            batch_wait_s=self.config.batch_wait_ms / 1000,
            checkpoint_every=self.config.checkpoint_every, on_tick=self.metrics.observe_tick)

    def shutdown(self) -> None:
        self.scheduler.stop()
        self.store.close()

    # -- errors ------------------------------------------------------------------------------------
    def refuse(self, code: str, message: str) -> ServeError:
        return self.count(ServeError(code, message))

    def count(self, e: ServeError) -> ServeError:
        """Count a refusal once in ``streamwise_rejected_total``."""
        if not e.counted:
            self.metrics.rejected.labels(reason=e.code).inc()
            e.counted = True
        return e

    # -- metadata ----------------------------------------------------------------------------------
    def model_info(self, name: str) -> dict[str, Any]:
        m = self.models[name]
        ch = m.fixed_in_channels or 1
        info: dict[str, Any] = {
            "name": name, "channels": ch, "period": m.period,
            "delay_frames": float(m.delay), "stride": str(Fraction(m.stride)),
            "receptive_field": m.receptive_field, "sample_rate": self.config.sample_rate,
            "parameters": m.parameters if isinstance(m, OnnxServed) else
            sum(p.numel() for p in m.parameters()), "runtime": "torch",
        }
        if isinstance(m, OnnxServed):
            info.update(runtime="onnx", chunk=m.onnx.chunk, prologue=m.onnx.prologue)
        return info

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
        except (TypeError, ValueError):
            budget = float("nan")
        if not 0 < budget <= 60_000:
            raise self.refuse("bad_request", f"budget_ms must be in (0, 60000], got {budget_ms}")
        if len(self.sessions) >= self.config.max_sessions:
            raise self.refuse("too_many_sessions", f"server is full ({self.config.max_sessions} "
                              "sessions); try again later")
        mine = sum(1 for s in self.sessions.values() if s.client == client)
        if mine >= self.config.max_sessions_per_client:
            raise self.refuse("too_many_sessions", f"client {client} already has {mine} sessions "
                              f"(limit {self.config.max_sessions_per_client}); close some first")
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
        self.store.put_many({sid: sess.to_blob()})  # a session exists once it is durable
        self.sessions[sid] = sess
        return sess, token

    def get(self, sid: str, token: str | None) -> Session:
        """The session ``sid`` if ``token`` is its own (loaded from the store after a restart)."""
        sess = self.sessions.get(sid)
        if sess is not None and self.config.shared_store:
            with self.scheduler.lock:
                if sess.attached == 0 and not sess.queue:  # another replica may have moved it on
                    self.sessions.pop(sid, None)
                    sess = None
        if sess is None:
            blob = self.store.get(sid) if isinstance(sid, str) and len(sid) < 64 else None
            if blob is None:
                raise self.refuse("unknown_session", f"no session {sid!r} (closed, expired or "
                                  "never opened)")
            loaded = Session.from_blob(blob, self.models)
            if not loaded.token_ok(token):
                raise self.refuse("unauthorized", f"wrong token for session {sid}")
            sess = self.sessions.setdefault(sid, loaded)
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
                del self.sessions[sess.id]

    def ack(self, sess: Session, seq: int) -> None:
        """Acknowledge outputs up to ``seq``; with a shared store, durably (another replica may
        serve the next call)."""
        with self.scheduler.lock:
            self._check_ack(sess, int(seq))
            sess.ack(int(seq))
            if self.config.shared_store and not sess.queue:
                state = self.scheduler.batchers[sess.model].row_state(sess.stream)
                self.store.put_many({sess.id: sess.to_blob(state)})

    # -- pushing -----------------------------------------------------------------------------------
    def _chunk(self, sess: Session, data: Any) -> Tensor:
        """Check a ``[C, T]`` array against the session; return it as ``[1, C, T]``."""
        arr = data.numpy() if isinstance(data, Tensor) else data
        if not isinstance(arr, np.ndarray):
            raise self.refuse("bad_shape", f"expected a [{sess.channels}, T] float32 array")
        if arr.dtype != np.float32:
            raise self.refuse("bad_dtype", f"expected float32 samples, got {arr.dtype}")
        if arr.ndim != 2 or arr.shape[0] != sess.channels:
            raise self.refuse("bad_shape", f"expected a chunk of shape [{sess.channels}, T] "
                              f"(channels, frames), got {list(arr.shape)}")
        if arr.shape[1] > self.config.max_chunk_frames:
            raise self.refuse("too_large", f"chunk of {arr.shape[1]} frames exceeds the limit "
                              f"of {self.config.max_chunk_frames}; split it")
        if self.config.check_finite and not np.isfinite(arr).all():
            raise self.refuse("non_finite", "chunk contains NaN or inf; it was not consumed")
        x = torch.from_numpy(np.array(arr, dtype=np.float32))[None]
        try:
            sess.stream.check(x)
        except ValueError as e:
            raise self.refuse("bad_shape", str(e)) from e
        return x

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

    def forget(self, sid: str) -> None:
        self.sessions.pop(sid, None)
        self.store.delete(sid)

    def reap_idle(self) -> list[str]:
        """Expire sessions idle longer than ``idle_timeout_s`` (memory and store)."""
        limit = time.monotonic() - self.config.idle_timeout_s
        with self.scheduler.lock:
            old = [s.id for s in self.sessions.values()
                   if s.last_active < limit and not s.queue and s.attached == 0]
        for sid in old:
            self.forget(sid)
        now = time.monotonic()
        if now - self._last_store_sweep < min(30.0, self.config.idle_timeout_s):
            return old
        self._last_store_sweep = now
        # checkpoints of sessions nobody holds (a crashed server's, never resumed) expire too
        return old + self.store.expire(self.config.idle_timeout_s, set(self.sessions))
