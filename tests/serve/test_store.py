"""Checkpoint stores: round trip, batches, expiry of checkpoints nobody resumed."""

from __future__ import annotations

import sqlite3
import time

import pytest

from streamwise.serve.store import MemoryStore, SQLiteStore, open_store


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_round_trip_and_expiry(tmp_path, kind):
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "s.db")
    store.put_many({"a": b"1", "b": b"2", "c": b"3"})
    store.put_many({"a": b"one"})
    assert store.get("a") == b"one" and store.get("zz") is None
    assert sorted(store.keys()) == ["a", "b", "c"]
    time.sleep(0.3)
    store.put_many({"c": b"fresh"})
    assert sorted(store.expire(0.2, keep={"b"})) == ["a"]  # b is held by a live session
    assert sorted(store.keys()) == ["b", "c"]
    store.delete("b")
    assert store.keys() == ["c"]
    store.close()


def test_sqlite_file_from_before_expiry_is_upgraded(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, blob BLOB NOT NULL)")
    db.execute("INSERT INTO sessions VALUES ('x', x'00')")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert store.get("x") == b"\x00"
    assert store.expire(1.0, keep=set()) == ["x"]  # never stamped: the oldest there is


def test_open_store_names():
    assert isinstance(open_store("memory"), MemoryStore)
    with pytest.raises(ValueError, match="redis://"):
        open_store("ftp://nope")


def _fence(store) -> None:
    """A checkpoint behind the stored one (a stale replica) is refused; ahead or equal, written."""
    assert store.put_many({"s": b"open"}) == set()  # the first write carries no progress
    assert store.put_many({"s": b"at 5", "t": b"t at 1"}, {"s": (5, 2), "t": (1, -1)}) == set()
    assert store.put_many({"s": b"stale at 3"}, {"s": (3, 2)}) == {"s"}
    assert store.put_many({"s": b"stale ack"}, {"s": (5, 1)}) == {"s"}
    assert store.get("s") == b"at 5"
    assert store.put_many({"s": b"acked", "t": b"t stale"}, {"s": (5, 4), "t": (0, -1)}) == {"t"}
    assert store.get("s") == b"acked" and store.get("t") == b"t at 1"
    assert store.put_many({"s": b"at 9"}, {"s": (9, 4)}) == set() and store.get("s") == b"at 9"
    store.delete("s")  # a new session under the id starts over
    assert store.put_many({"s": b"again"}, {"s": (0, -1)}) == set()
    assert store.get("s") == b"again" and sorted(store.keys()) == ["s", "t"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_checkpoints_never_go_backwards(tmp_path, kind):
    store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "s.db")
    _fence(store)
    store.close()


def test_redis_checkpoints_never_go_backwards(redis_url):
    store = open_store(redis_url, ttl_s=60)
    _fence(store)
    store.close()
