"""Where session checkpoints live: an embedded SQLite file (default), Redis, or memory.

A checkpoint is one opaque blob per session id, written in batches (one transaction per scheduler
tick) so that every reply a client gets is already durable when write-through is on.

A write may carry each session's *progress*, ``(next_seq, acked)``: the store then never goes
backwards.  A checkpoint older than the one stored (a replica still holding a session that a
client has moved to another replica, which wrote on) is refused and its key returned, so a
client that trusted the newer ``durable_seq`` never finds its chunks missing after a failover.
Progress compares as a pair: ``next_seq`` first, then ``acked``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

Progress = tuple[int, int]  # (next_seq, acked) of a checkpoint


class StateStore(Protocol):
    """Key-value storage of session checkpoints."""

    def put_many(self, items: Mapping[str, bytes],
                 progress: Mapping[str, Progress] | None = None) -> set[str]:
        """Write ``items``; those whose ``progress`` is behind the stored one are not written
        and their keys returned."""
        ...

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
        self._p: dict[str, Progress] = {}
        self._lock = threading.Lock()

    def put_many(self, items: Mapping[str, bytes],
                 progress: Mapping[str, Progress] | None = None) -> set[str]:
        now = time.time()
        progress = progress or {}
        with self._lock:
            stale = {k for k, p in progress.items() if k in self._d and p < self._p.get(k, p)}
            for k, v in items.items():
                if k not in stale:
                    self._d[k], self._t[k] = v, now
                    if k in progress:
                        self._p[k] = progress[k]
        return stale

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._d.get(key)

    def delete(self, key: str) -> None:
        with self._lock:
            self._d.pop(key, None)
            self._t.pop(key, None)
            self._p.pop(key, None)

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
                self._p.pop(k, None)
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
            for col, decl in (("updated", "REAL NOT NULL DEFAULT 0"),  # files from before
                              ("next_seq", "INTEGER NOT NULL DEFAULT -1"),
                              ("acked", "INTEGER NOT NULL DEFAULT -2")):
                if col not in cols:
                    self._db.execute(f"ALTER TABLE sessions ADD COLUMN {col} {decl}")

    def put_many(self, items: Mapping[str, bytes],
                 progress: Mapping[str, Progress] | None = None) -> set[str]:
        if not items:
            return set()
        progress = progress or {}
        with self._lock:
            self._db.execute("BEGIN")
            try:
                now = time.time()
                before = self._db.total_changes
                self._db.executemany(  # a row whose stored progress is ahead is left as it is
                    "INSERT INTO sessions (id, blob, updated, next_seq, acked) VALUES (?, ?, ?, "
                    "?, ?) ON CONFLICT(id) DO UPDATE SET blob = excluded.blob, updated = "
                    "excluded.updated, next_seq = excluded.next_seq, acked = excluded.acked "
                    "WHERE excluded.next_seq > sessions.next_seq OR (excluded.next_seq = "
                    "sessions.next_seq AND excluded.acked >= sessions.acked) OR "
                    "excluded.next_seq = -1",
                    [(k, v, now, *progress.get(k, (-1, -2))) for k, v in items.items()],
                )
                # every row written (the usual case): nothing was refused, no need to look
                written = self._db.total_changes - before
                keys = [k for k in items if k in progress] if written < len(items) else []
                stale = set()
                for i in range(0, len(keys), 500):
                    part = keys[i : i + 500]
                    rows = self._db.execute(
                        f"SELECT id, next_seq, acked FROM sessions WHERE id IN "
                        f"({','.join('?' * len(part))})", part).fetchall()
                    stale |= {r[0] for r in rows if (r[1], r[2]) > progress[r[0]]}
                self._db.execute("COMMIT")
            except BaseException:  # disk full, read-only file: leave no transaction open
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return stale

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


_PROGRESS_SUFFIX = "#progress"  # beside each checkpoint key: "next_seq acked"
# KEYS: checkpoint, progress pairs; ARGV: ttl_ms (0: none), then blob, next_seq, acked per pair.
# A pair whose stored progress is ahead is skipped and its key returned; next_seq -1: write.
_FENCED_SET = """
local stale = {}
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local j = 2 + (i - 1) / 2 * 3
  local n, a = tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])
  local old = redis.call('GET', KEYS[i + 1])
  local ok = true
  if old and n >= 0 then
    local on, oa = string.match(old, '(-?%d+) (-?%d+)')
    on, oa = tonumber(on), tonumber(oa)
    ok = n > on or (n == on and a >= oa)
  end
  if ok then
    if ttl > 0 then
      redis.call('SET', KEYS[i], ARGV[j], 'PX', ttl)
      redis.call('SET', KEYS[i + 1], n .. ' ' .. a, 'PX', ttl)
    else
      redis.call('SET', KEYS[i], ARGV[j])
      redis.call('SET', KEYS[i + 1], n .. ' ' .. a)
    end
  else
    table.insert(stale, KEYS[i])
  end
end
return stale
"""


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
        self._fenced_set = self._r.register_script(_FENCED_SET)

    def put_many(self, items: Mapping[str, bytes],
                 progress: Mapping[str, Progress] | None = None) -> set[str]:
        if not items:
            return set()
        progress = progress or {}
        keys: list[str] = []
        argv: list[bytes | int] = [self.ttl_ms or 0]
        for k, v in items.items():
            keys += [self.prefix + k, self._progress_key(k)]
            argv += [v, *progress.get(k, (-1, -2))]
        stale = self._fenced_set(keys=keys, args=argv)  # one script: atomic, like MULTI/EXEC
        n = len(self.prefix)
        return {bytes(k).decode()[n:] for k in stale}

    def _progress_key(self, key: str) -> str:
        return f"{self.prefix}{key}{_PROGRESS_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        v = self._r.get(self.prefix + key)
        return bytes(v) if v is not None else None  # type: ignore[arg-type]

    def delete(self, key: str) -> None:
        self._r.delete(self.prefix + key, self._progress_key(key))

    def expire(self, older_than_s: float, keep: set[str]) -> list[str]:
        """Redis expires keys itself (``ttl_s``): nothing to do."""
        return []

    def keys(self) -> list[str]:
        n = len(self.prefix)
        return [k.decode()[n:] for k in self._r.scan_iter(match=self.prefix + "*")
                if not k.decode().endswith(_PROGRESS_SUFFIX)]

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
