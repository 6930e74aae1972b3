"""Where session checkpoints live: an embedded SQLite file (default), Redis, or memory.

A checkpoint is one opaque blob per session id, written in batches (one transaction per scheduler
tick) so that every reply a client gets is already durable when write-through is on.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class StateStore(Protocol):
    """Key-value storage of session checkpoints."""

    def put_many(self, items: Mapping[str, bytes]) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def delete(self, key: str) -> None: ...
    def keys(self) -> list[str]: ...
    def expire(self, older_than_s: float, keep: set[str]) -> list[str]: ...
    def close(self) -> None: ...


class MemoryStore:
    """A dict: durable only as long as the process (tests, ``--store memory``)."""

    def __init__(self) -> None:
        self._d: dict[str, bytes] = {}
        self._t: dict[str, float] = {}
        self._lock = threading.Lock()

    def put_many(self, items: Mapping[str, bytes]) -> None:
        now = time.time()
        with self._lock:
            self._d.update(items)
            self._t.update(dict.fromkeys(items, now))

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._d.get(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._d.pop(key, None)
            self._t.pop(key, None)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._d)

    def expire(self, older_than_s: float, keep: set[str]) -> list[str]:
        limit = time.time() - older_than_s
        with self._lock:
            old = [k for k, t in self._t.items() if t < limit and k not in keep]
            for k in old:
                self._d.pop(k, None)
                self._t.pop(k, None)
        return old

    def close(self) -> None:
        pass


class SQLiteStore:
    """One table in a SQLite file, WAL mode: a batch is one transaction.

    ``synchronous=NORMAL``: a committed checkpoint survives a killed server process (the WAL is
    in the OS cache); after a power cut the last few may be lost, and clients re-send them.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, blob BLOB NOT NULL, "
                "updated REAL NOT NULL DEFAULT 0)"
            )
            cols = {r[1] for r in self._db.execute("PRAGMA table_info(sessions)")}
            if "updated" not in cols:  # a file from before sessions expired in the store
                self._db.execute("ALTER TABLE sessions ADD COLUMN updated REAL NOT NULL DEFAULT 0")

    def put_many(self, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                now = time.time()
                self._db.executemany(
                    "INSERT INTO sessions (id, blob, updated) VALUES (?, ?, ?) ON CONFLICT(id) "
                    "DO UPDATE SET blob = excluded.blob, updated = excluded.updated",
                    [(k, v, now) for k, v in items.items()],
                )
                self._db.execute("COMMIT")
            except BaseException:  # disk full, read-only file: leave no transaction open
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def get(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT blob FROM sessions WHERE id = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (key,))

    def keys(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM sessions")]

    def expire(self, older_than_s: float, keep: set[str]) -> list[str]:
        """Delete checkpoints not written for ``older_than_s`` (sessions nobody resumed)."""
        limit = time.time() - older_than_s
        with self._lock:
            old = [r[0] for r in self._db.execute(
                "SELECT id FROM sessions WHERE updated < ?", (limit,)) if r[0] not in keep]
            self._db.executemany("DELETE FROM sessions WHERE id = ?", [(k,) for k in old])
        return old

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisStore:
    """Keys ``<prefix><id>`` in Redis; a batch is one MULTI/EXEC pipeline."""

    def __init__(self, url: str, prefix: str = "streamwise:session:",
                 ttl_s: float | None = None, timeout_s: float = 2.0) -> None:
        import redis

        self.prefix, self.ttl_ms = prefix, int(ttl_s * 1000) if ttl_s else None
        # a stalled Redis fails a call within seconds instead of hanging the compute thread
        self._r = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                       socket_connect_timeout=timeout_s)
        self._r.ping()  # fail at start-up, not at the first checkpoint

    def put_many(self, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        pipe = self._r.pipeline(transaction=True)
        for k, v in items.items():
            pipe.set(self.prefix + k, v, px=self.ttl_ms)  # idle sessions expire by themselves
        pipe.execute()

    def get(self, key: str) -> bytes | None:
        v = self._r.get(self.prefix + key)
        return bytes(v) if v is not None else None  # type: ignore[arg-type]

    def delete(self, key: str) -> None:
        self._r.delete(self.prefix + key)

    def expire(self, older_than_s: float, keep: set[str]) -> list[str]:
        """Redis expires keys itself (``ttl_s``): nothing to do."""
        return []

    def keys(self) -> list[str]:
        n = len(self.prefix)
        return [k.decode()[n:] for k in self._r.scan_iter(match=self.prefix + "*")]

    def close(self) -> None:
        self._r.close()


def open_store(url: str, ttl_s: float | None = None) -> StateStore:
    """``memory``, ``sqlite:PATH`` (or a plain file path) or ``redis://host:port/db``.

    ``ttl_s``: Redis keys expire after that long without a checkpoint (idle sessions).
    """
    if url == "memory":
        return MemoryStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, ttl_s=ttl_s)
    if url.startswith("sqlite:"):
        return SQLiteStore(url[len("sqlite:"):])
    if "://" in url:
        raise ValueError(f"unknown store {url!r}: expected memory, sqlite:PATH, a file path "
                         "or redis://host:port/db")
    return SQLiteStore(url)
