"""A server's limits and knobs (``streamwise serve`` flags set some; see docs/serve-protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass


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
    slo_batching: bool = False  # cut batches by the measured latency model to meet deadlines
    checkpoint_every: int = 1  # chunks between checkpoints (1: every reply is durable)
    max_load: float = 0.9  # refuse new sessions above this compute-thread load
    check_finite: bool = True
    sample_rate: int | None = 16_000  # for clients and the browser page (None: not audio)
    shared_store: bool = False  # several replicas share the store: it, not memory, is the truth
    server_id: str = ""  # names this process/replica in replies (Ray Serve sets it)
    max_client_bytes: int = 256 << 20  # queued chunks + unacked outputs, all a client's sessions
    max_outbox_bytes: int = 8 << 20  # unread replies on one WebSocket before it is shed
    open_rate_per_s: float = 10.0  # session opens per client per second, after a burst of
    open_burst: int = 256  # ... this many
    allowed_origins: tuple[str, ...] = ()  # browser origins besides the server's own ("*": any)
