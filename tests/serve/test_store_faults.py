"""The session store failing mid-stream: a read-only or full SQLite file, Redis stopped and started.

While it fails the server refuses new sessions (``store_unavailable``, counted, the
``streamwise_store_up`` gauge at 0), keeps stepping the open streams without calling their
outputs durable, and once the store is back it writes the sessions it owes (without waiting for
their next chunk) and every guarantee holds again, through a SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from streamwise.serve.app import create_app
from streamwise.serve.client import ServerError, StreamClient
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.sessions import Session
from streamwise.serve.store import SQLiteStore
from tests.serve.conftest import MODELS, RedisProcess, ServerProcess
from tests.serve.test_durability import offline


def _fault(store: SQLiteStore, mode: str, on: bool) -> None:
    """Make the store's own connection fail writes the way a real file does."""
    with store._lock:
        if mode == "read_only":  # SQLITE_READONLY: "attempt to write a readonly database"
            store._db.execute(f"PRAGMA query_only = {int(on)}")
        else:  # SQLITE_FULL: "database or disk is full" once the file must grow
            pages = store._db.execute("PRAGMA page_count").fetchone()[0]
            store._db.execute(f"PRAGMA max_page_count = {pages if on else 1 << 30}")


def _metric(text: str, name: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(name + " ") or
                x.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


def _stored_next_seq(store: SQLiteStore, sid: str) -> int:
    blob = store.get(sid)
    assert blob is not None
    return Session.from_blob(blob, MODELS).next_seq


@pytest.mark.parametrize("mode", ["read_only", "disk_full"])
def test_sqlite_failing_mid_stream(tmp_path: Path, mode: str) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    model = "denoiser"  # 320 outputs per chunk kept unacknowledged: the file must grow
    x = np.random.default_rng(0).standard_normal((1, 320 * 120)).astype(np.float32) * 0.3
    chunks = [x[:, a : a + 320] for a in range(0, x.shape[1], 320)]
    with TestClient(create_app(Service(MODELS, store, ServeConfig()))) as c:
        r = c.post("/v1/sessions", json={"model": model}).json()
        sid, h = r["session"], {"Authorization": f"Bearer {r['token']}"}
        got: list[np.ndarray] = []

        def push(i: int) -> int:
            resp = c.post(f"/v1/sessions/{sid}/chunks", headers=h,
                          json={"seq": i, "data": chunks[i].tolist()})
            assert resp.status_code == 200, resp.text
            got.append(np.asarray(resp.json()["data"], np.float32))
            return int(resp.json()["durable_seq"])

        for i in range(3):
            assert push(i) == i
        _fault(store, mode, True)
        i, durable = 3, 2
        while durable == i - 1 and i < 100:  # a full file still takes rows until a page is needed
            durable = push(i)
            i += 1
        assert durable < i - 1, "the fault never reached the store"
        frozen = durable
        for _ in range(3):  # served on, not called durable
            assert push(i) == frozen
            i += 1
        health = c.get("/healthz").json()
        assert health["ok"] and not health["store_ok"] and health["store_failures"] >= 1
        metrics = c.get("/metrics").text
        assert _metric(metrics, "streamwise_store_up") == 0.0
        assert _metric(metrics, "streamwise_store_failures_total") >= 1
        if mode == "read_only":  # an open needs a write: refused, with the store's own words
            resp = c.post("/v1/sessions", json={"model": "tiny_vad"})
            assert resp.status_code == 503
            err = resp.json()
            assert err["code"] == "store_unavailable" and "readonly" in err["message"]
        assert _stored_next_seq(store, sid) == frozen + 1

        _fault(store, mode, False)
        deadline = time.monotonic() + 10  # no new chunk: the server writes what it owes itself
        while _stored_next_seq(store, sid) != i and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _stored_next_seq(store, sid) == i
        assert push(i) == i  # durable again, up to the newest output
        assert c.get("/healthz").json()["store_ok"]
        assert c.post("/v1/sessions", json={"model": "tiny_vad"}).status_code == 200
    out = np.concatenate(got, -1)  # the model's lookahead holds the last frames back
    np.testing.assert_allclose(out, offline(model, x)[:, : out.shape[-1]], atol=1e-5)
    assert out.shape[-1] > 320 * (len(got) - 1)


async def _redis_outage(server: ServerProcess, redis_proc: RedisProcess) -> None:
    x = np.random.default_rng(1).standard_normal((1, 320 * 40)).astype(np.float32) * 0.3
    chunks = [x[:, a : a + 320] for a in range(0, x.shape[1], 320)]
    c = StreamClient(server.url.replace("http", "ws"))
    await c.open("tiny_vad")
    got: dict[int, np.ndarray] = {}

    async def step(i: int) -> None:
        await c.send(chunks[i])
        s, y = await c.recv()
        assert s == i
        got[s] = y

    for i in range(10):
        await step(i)
        await c.ack(i)
    assert not c.unsent
    redis_proc.stop()
    for i in range(10, 20):  # answered, but not durable: the client keeps every chunk
        await step(i)
    assert sorted(c.unsent) == list(range(10, 20))
    other = StreamClient(server.url.replace("http", "ws"))
    with pytest.raises(ServerError, match="store_unavailable"):
        await other.open("tiny_vad")
    await other.disconnect()
    async with httpx.AsyncClient() as h:
        assert _metric((await h.get(server.url + "/metrics")).text, "streamwise_store_up") == 0
        assert not (await h.get(server.url + "/healthz")).json()["store_ok"]
    redis_proc.start()  # same port and append-only file: the checkpoints up to seq 9 are back
    deadline = time.monotonic() + 15
    async with httpx.AsyncClient() as h:
        while not (await h.get(server.url + "/healthz")).json()["store_ok"]:
            assert time.monotonic() < deadline, "the server did not see the store return"
            await asyncio.sleep(0.2)
    await step(20)
    assert not c.unsent, "everything up to the newest output is durable again"
    server.kill()
    server.start()
    outs = await c.resume()  # nothing acknowledged after 9: the server returns 10..20 as stored
    assert [s for s, _ in outs] == list(range(10, 21))
    for s, y in outs:
        np.testing.assert_array_equal(y, got[s])
    await c.ack(20)
    for i in range(21, len(chunks)):
        await step(i)
    _, tail = await c.close()
    full = np.concatenate([got[i] for i in range(len(chunks))] + [tail], -1)
    np.testing.assert_allclose(full, offline("tiny_vad", x), atol=1e-5)


def test_redis_stopped_and_started_mid_stream(redis_proc: RedisProcess) -> None:
    server = ServerProcess(redis_proc.url).start()
    try:
        asyncio.run(_redis_outage(server, redis_proc))
    finally:
        server.stop()
