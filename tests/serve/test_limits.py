"""Per-client limits and the browser Origin check: opens per second, memory held, unread replies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import httpx
import numpy as np
import psutil
import pytest
import websockets
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from streamwise.serve import wire
from streamwise.serve.app import create_app
from streamwise.serve.client import StreamClient
from streamwise.serve.limits import OpenRate, origin_allowed
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import MemoryStore
from tests.serve.conftest import MODELS, ServerProcess, make_client
from tests.serve.test_durability import offline


def test_open_rate_is_a_token_bucket_per_client():
    r = OpenRate(rate=2.0, burst=3)
    assert [r.wait("a", now=0.0) for _ in range(3)] == [0.0] * 3
    assert r.wait("a", now=0.0) == pytest.approx(0.5)  # empty: one token every 0.5 s
    assert r.wait("b", now=0.0) == 0.0  # another client has its own bucket
    assert r.wait("a", now=0.6) == 0.0
    assert r.wait("a", now=0.6) > 0
    with pytest.raises(ValueError, match="rate"):
        OpenRate(0, 1)


def test_opens_over_the_rate_are_refused_with_the_wait():
    with make_client(open_rate_per_s=0.01, open_burst=2) as c:
        for _ in range(2):
            assert c.post("/v1/sessions", json={}).status_code == 200
        r = c.post("/v1/sessions", json={})
        assert r.status_code == 429
        err = r.json()
        assert err["code"] == "rate_limited" and "retry in" in err["message"]
        with c.websocket_connect("/v1/stream") as ws:
            ws.send_text(json.dumps({"op": "open"}))
            assert json.loads(ws.receive_text())["code"] == "rate_limited"


def test_a_client_memory_limit_spans_its_sessions_and_frees_on_ack():
    x = np.random.default_rng(0).standard_normal((1, 320 * 8)).astype(np.float32)
    chunks = [x[:, a : a + 320] for a in range(0, x.shape[1], 320)]
    service = Service(MODELS, MemoryStore(), ServeConfig(max_client_bytes=8 * 1280))
    app = create_app(service)
    greedy, other = (TestClient(app, client=(ip, 5000)) for ip in ("10.0.0.1", "10.0.0.2"))
    try:
        def open_(c: TestClient) -> tuple[str, dict[str, str]]:
            r = c.post("/v1/sessions", json={"model": "denoiser"}).json()
            return r["session"], {"Authorization": f"Bearer {r['token']}"}

        sessions = [open_(greedy) for _ in range(2)]
        refused = None
        for i in range(4):  # two sessions, four unacknowledged chunks each: over 8 outputs
            for sid, h in sessions:
                r = greedy.post(f"/v1/sessions/{sid}/chunks", headers=h,
                                json={"seq": i, "data": chunks[i].tolist()})
                if r.status_code != 200:
                    refused = (sid, h, i, r)
                    break
            if refused:
                break
        assert refused is not None
        sid, h, i, r = refused
        assert r.status_code == 429 and r.json()["code"] == "memory_limit"
        assert "acknowledge" in r.json()["message"]
        osid, oh = open_(other)  # another client is not held to the greedy one's bytes
        assert greedy.post  # the same app
        assert other.post(f"/v1/sessions/{osid}/chunks", headers=oh,
                          json={"seq": 0, "data": chunks[0].tolist()}).status_code == 200
        for s, hh in sessions:
            greedy.post(f"/v1/sessions/{s}/ack", headers=hh, json={"ack": i - 1})
        r = greedy.post(f"/v1/sessions/{sid}/chunks", headers=h,
                        json={"seq": i, "data": chunks[i].tolist()})
        assert r.status_code == 200  # acknowledging freed the memory; the refused chunk is intact
        assert service.accounts["10.0.0.1"].bytes == sum(
            sess.held_bytes for sess in service.sessions.values() if sess.client == "10.0.0.1")
        for s, hh in sessions:
            greedy.post(f"/v1/sessions/{s}/close", headers=hh)
        assert "10.0.0.1" not in service.accounts  # nothing held once its sessions are gone
    finally:
        service.shutdown()


@pytest.mark.parametrize("origin,allowed,ok", [
    (None, (), True),  # a program, not a browser
    ("http://testserver", (), True),  # the server's own page
    ("http://evil.example", (), False),
    ("https://app.example", ("https://app.example",), True),
    ("https://APP.example/", ("https://app.example",), True),
    ("http://evil.example", ("*",), True),
])
def test_origin_allow_list(origin, allowed, ok):
    assert origin_allowed(origin, "testserver", allowed) is ok
    headers = {"origin": origin} if origin else {}
    with make_client(allowed_origins=allowed) as c:
        r = c.post("/v1/sessions", json={}, headers=headers)
        assert r.status_code == (200 if ok else 403)
        if not ok:
            assert r.json()["code"] == "forbidden_origin"
        assert c.get("/v1/info", headers=headers).status_code == 200  # reading is harmless
        if ok:
            with c.websocket_connect("/v1/stream", headers=headers) as ws:
                ws.send_text(json.dumps({"op": "open"}))
                assert json.loads(ws.receive_text())["op"] == "opened"
        else:
            with pytest.raises(WebSocketDisconnect) as e, \
                    c.websocket_connect("/v1/stream", headers=headers):
                pass
            assert e.value.code == 1008
            assert 'reason="forbidden_origin"' in c.get("/metrics").text


FLOOD = 120  # 1 s chunks the stalled client sends: 7.5 MiB of outputs, past its 4 KiB receive
# buffer, the server's socket buffer (up to 4 MiB) and its 1 MiB outbox limit


async def _stalled_and_bystander(server: ServerProcess) -> dict[str, float]:
    """One client sends 1 s chunks and never reads; another streams tiny_vad meanwhile."""
    rng = np.random.default_rng(1)
    big = rng.standard_normal((1, 16000 * FLOOD)).astype(np.float32) * 0.3
    bx = rng.standard_normal((1, 320 * 150)).astype(np.float32) * 0.3
    ws_url = server.url.replace("http", "ws") + "/v1/stream"
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that stalls at once
    stalled = await websockets.connect(ws_url, sock=sock, max_size=None, max_queue=1,
                                       compression=None, ping_interval=None)
    await stalled.send(json.dumps({"op": "open", "model": "denoiser"}))
    opened = json.loads(await stalled.recv())
    warm = StreamClient(server.url.replace("http", "ws"))  # torch's allocator at its peak
    await warm.open("denoiser")
    for i in range(2):
        await warm.send(big[:, i * 16000 : (i + 1) * 16000])
        await warm.recv()
    await warm.close()
    proc = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
    rss0 = proc.memory_info().rss

    bystander = StreamClient(server.url.replace("http", "ws"))
    await bystander.open("tiny_vad")
    got = []

    async def stream_bystander() -> None:
        for i in range(150):
            await bystander.send(bx[:, i * 320 : (i + 1) * 320])
            s, y = await bystander.recv()
            assert s == i
            got.append(y)
            await bystander.ack(s)
            await asyncio.sleep(0.01)

    async def flood() -> int:
        sent = 0
        try:
            for i in range(FLOOD):
                await asyncio.wait_for(stalled.send(wire.encode(
                    i, big[:, i * 16000 : (i + 1) * 16000])), 5)
                sent += 1
        except (TimeoutError, websockets.ConnectionClosed):
            pass
        return sent

    sent, _ = await asyncio.gather(flood(), stream_bystander())
    rss1 = proc.memory_info().rss
    # the stalled connection was shed and the refusal counted; its close frame (1008
    # slow_client) queues behind the bytes the client never read, so the client drops it here
    text = ""
    for _ in range(100):
        async with httpx.AsyncClient() as h:
            text = (await h.get(server.url + "/metrics")).text
        if 'streamwise_rejected_total{reason="slow_client"} 1.0' in text:
            break
        await asyncio.sleep(0.2)
    assert 'streamwise_rejected_total{reason="slow_client"} 1.0' in text, text
    stalled.transport.abort()
    _, tail = await bystander.close()
    np.testing.assert_allclose(np.concatenate(got + [tail], -1), offline("tiny_vad", bx),
                               atol=1e-5)
    # the shed session lost nothing: resume delivers every output it was owed
    c = StreamClient(server.url.replace("http", "ws"))
    c.session, c.token, c.next_seq = opened["session"], opened["token"], sent
    outs = await c.resume()
    assert [s for s, _ in outs] == list(range(len(outs))) and len(outs) >= sent - 1
    ref = offline("denoiser", big[:, : 16000 * len(outs)])
    np.testing.assert_allclose(np.concatenate([y for _, y in outs], -1),
                               ref[:, : sum(y.shape[-1] for _, y in outs)], atol=1e-5)
    await c.disconnect()
    return {"sent": sent, "rss_growth_mb": (rss1 - rss0) / 2**20}


def test_a_stalled_reader_is_shed_and_others_keep_streaming(tmp_path):
    server = ServerProcess(f"sqlite:{tmp_path / 's.db'}", extra=["--max-outbox-mb", "1"]).start()
    try:
        r = asyncio.run(_stalled_and_bystander(server))
    finally:
        server.stop()
    # bounded by what was accepted, not by what the stalled client would have sent: per chunk
    # sent (62.5 KiB), while it is queued its frame's bytes, the decoded array and the tensor
    # (a loaded machine queues them all before the first is computed, a quiet one never does),
    # then its output held for resume and the output's encoded copy for checkpoints: 5 copies
    # at the high-water mark; + the 1 MiB outbox, up to 4 MiB of socket buffers and 16 MiB the
    # allocator keeps.  A quiet run grew under 40 MiB, one beside a second test worker 52 MiB.
    chunk_mb = 16000 * 4 / 2**20
    assert r["rss_growth_mb"] < 5 * r["sent"] * chunk_mb + 1 + 4 + 16, r


async def _slow_reader(server: ServerProcess) -> tuple[int, int]:
    """A client that reads, but slower than its outputs come: shed, then resumed exactly."""
    big = np.random.default_rng(2).standard_normal((1, 16000 * FLOOD)).astype(np.float32) * 0.3
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ws = await websockets.connect(server.url.replace("http", "ws") + "/v1/stream", sock=sock,
                                  max_size=None, max_queue=1, compression=None,
                                  ping_interval=None)
    await ws.send(json.dumps({"op": "open", "model": "denoiser"}))
    opened = json.loads(await ws.recv())
    heard: dict[int, np.ndarray] = {}

    async def read_slowly() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                seq, _, y = wire.decode(await ws.recv())
                heard[seq] = y
                await asyncio.sleep(0.25)  # 4 outputs/s; the server makes about 10/s

    reader = asyncio.create_task(read_slowly())
    with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
        for i in range(FLOOD):
            await asyncio.wait_for(ws.send(wire.encode(i, big[:, i * 16000 : (i + 1) * 16000])),
                                   5)
    text = ""
    async with httpx.AsyncClient() as h:
        for _ in range(300):
            text = (await h.get(server.url + "/metrics")).text
            if 'streamwise_rejected_total{reason="slow_client"} 1.0' in text:
                break
            await asyncio.sleep(0.2)
    assert 'streamwise_rejected_total{reason="slow_client"} 1.0' in text, text
    reader.cancel()
    ws.transport.abort()
    c = StreamClient(server.url.replace("http", "ws"))
    c.session, c.token, c.next_seq = opened["session"], opened["token"], FLOOD
    outs = dict(await c.resume())  # nothing was acknowledged: every output computed, from 0
    await c.disconnect()
    assert list(outs) == list(range(len(outs))) and set(heard) <= set(outs)
    for s, y in heard.items():  # what the slow reader did get is what resume gives again
        np.testing.assert_array_equal(y, outs[s])
    ref = offline("denoiser", big[:, : 16000 * len(outs)])
    np.testing.assert_allclose(np.concatenate([outs[s] for s in sorted(outs)], -1),
                               ref[:, : sum(y.shape[-1] for y in outs.values())], atol=1e-5)
    return len(heard), len(outs)


def test_a_slow_reader_is_shed_and_resumes_exactly(tmp_path):
    server = ServerProcess(f"sqlite:{tmp_path / 's.db'}", extra=["--max-outbox-mb", "1"]).start()
    try:
        heard, owed = asyncio.run(_slow_reader(server))
    finally:
        server.stop()
    assert 0 < heard < owed, (heard, owed)  # it read some before it was shed
