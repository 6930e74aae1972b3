"""The documented error contract holds at the edges: oversized bodies with no Content-Length,
malformed JSON, and WebSocket messages over the limit (issue 16, defects 2 and 3)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import websockets

from streamwise.serve import wire
from tests.serve.conftest import ServerProcess, make_client


def test_oversized_chunked_body_gets_413_too_large():
    with make_client(max_message_bytes=4096) as c:
        s = c.post("/v1/sessions", json={}).json()

        def body():  # no Content-Length: sent with chunked transfer encoding
            yield b'{"seq": 0, "data": [['
            for _ in range(200):
                yield b"0.123456789, " * 10
            yield b"0.0]]}"

        r = c.post(f"/v1/sessions/{s['session']}/chunks", content=body(),
                   headers={"Authorization": f"Bearer {s['token']}",
                            "Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.json()["op"] == "error" and r.json()["code"] == "too_large"
        assert "4096" in r.json()["message"]
        # the session is untouched: chunk 0 is still the next one
        ok = c.post(f"/v1/sessions/{s['session']}/chunks", json={"seq": 0, "data": [[0.0] * 32]},
                    headers={"Authorization": f"Bearer {s['token']}"})
        assert ok.status_code == 200 and ok.json()["seq"] == 0


def test_malformed_json_gets_the_documented_error_shape():
    with make_client() as c:
        r = c.post("/v1/sessions", content=b"{not json",
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert r.json()["op"] == "error" and r.json()["code"] == "bad_request"
        s = c.post("/v1/sessions", json={}).json()
        r = c.post(f"/v1/sessions/{s['session']}/chunks", json={"data": [[0.0]]},
                   headers={"Authorization": f"Bearer {s['token']}"})
        assert r.status_code == 400 and r.json()["code"] == "bad_request"
        assert "seq" in r.json()["message"]
        assert 'streamwise_rejected_total{reason="bad_request"} 2.0' in c.get("/metrics").text


async def _ws_over_limit(url: str) -> None:
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"op": "open", "model": "tiny_vad"}))
        assert json.loads(await ws.recv())["op"] == "opened"
        over = np.zeros((1, 300_000), np.float32)  # 1.2 MB > the 1 MiB limit
        await ws.send(wire.encode(0, over))
        err = json.loads(await ws.recv())
        assert err["op"] == "error" and err["code"] == "too_large"
        await ws.send(wire.encode(0, np.zeros((1, 320), np.float32)))  # the socket still works
        seq, _, y = wire.decode(await ws.recv())
        assert seq == 0 and y.shape[-1] == 10


def test_websocket_message_over_the_limit_gets_too_large_and_the_socket_stays(tmp_path):
    server = ServerProcess(f"sqlite:{tmp_path / 's.db'}").start()
    try:
        asyncio.run(_ws_over_limit(server.url.replace("http", "ws") + "/v1/stream"))
    finally:
        server.stop()
