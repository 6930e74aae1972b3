"""Prometheus metrics of a server: sessions, queue depth, step latency, batch sizes, rejections."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from streamwise.serve.scheduler import TickStats

_LATENCY = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    """One registry per server, so tests and several apps in a process do not collide."""

    def __init__(self, sessions: Callable[[], float], queue_depth: Callable[[], float],
                 load: Callable[[], float], store_up: Callable[[], float]) -> None:
        r = self.registry = CollectorRegistry()
        Gauge("streamwise_sessions", "Open sessions held in memory", registry=r).set_function(
            sessions)
        Gauge("streamwise_queue_depth", "Accepted chunks waiting for a step",
              registry=r).set_function(queue_depth)
        Gauge("streamwise_load", "Fraction of the last 2 s the compute thread was busy",
              registry=r).set_function(load)
        Gauge("streamwise_store_up", "1 while the last session-store call succeeded, else 0",
              registry=r).set_function(store_up)
        self.store_failures = Counter("streamwise_store_failures",
                                      "Session-store calls that failed", registry=r)
        self.step = Histogram("streamwise_step_seconds", "Seconds per batched step call",
                              buckets=_LATENCY, registry=r)
        self.batch = Histogram("streamwise_batch_size", "Sessions stepped together in one call",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.latency = Histogram("streamwise_chunk_latency_seconds",
                                 "Seconds from a chunk's arrival to its output (server side)",
                                 buckets=_LATENCY, registry=r)
        self.checkpoint = Histogram("streamwise_checkpoint_seconds",
                                    "Seconds per checkpoint transaction", buckets=_LATENCY,
                                    registry=r)
        self.missed = Counter("streamwise_deadline_missed", "Chunks finished after their deadline",
                              registry=r)
        self.rejected = Counter("streamwise_rejected", "Refused requests by reason", ["reason"],
                                registry=r)
        self.chunks = Counter("streamwise_chunks", "Chunks stepped", registry=r)

    def observe_tick(self, s: TickStats) -> None:
        for v in s.step_seconds:
            self.step.observe(v)
        for b in s.batch_sizes:
            self.batch.observe(b)
        for v in s.latencies:
            self.latency.observe(v)
        self.chunks.inc(len(s.latencies))
        if s.missed:
            self.missed.inc(s.missed)
        self.checkpoint.observe(s.checkpoint_seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
