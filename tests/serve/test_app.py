"""The server in process: exact outputs, HTTP and WebSocket, isolation, bad input, metrics."""

from __future__ import annotations

import contextlib
import json
import struct

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from streamwise.serve import wire
from streamwise.serve.app import create_app
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import MemoryStore
from tests.serve.conftest import MODELS, make_client, served_models


def offline(name: str, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return MODELS[name](torch.from_numpy(x)[None])[0].numpy()


@contextlib.contextmanager
def ws_open(client, model="tiny_vad"):
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"op": "open", "model": model}))
        yield ws, json.loads(ws.receive_text())


def recv_output(ws):
    msg = ws.receive()
    if msg.get("text") is not None:
        return json.loads(msg["text"])
    seq, durable, arr = wire.decode(msg["bytes"])
    return seq, durable, arr


@pytest.mark.parametrize("model,chunk", [("tiny_vad", 320), ("denoiser", 160), ("tiny_vad", 77)])
def test_websocket_stream_equals_offline(client, model, chunk):
    x = np.random.default_rng(0).standard_normal((1, 4000)).astype(np.float32) * 0.3
    with ws_open(client, model) as (ws, opened):
        assert opened["op"] == "opened" and opened["model"]["name"] == model
        outs, seqs = [], []
        for i, a in enumerate(range(0, x.shape[1], chunk)):
            ws.send_bytes(wire.encode(i, x[:, a : a + chunk], ack=i - 1))
            seq, durable, y = recv_output(ws)
            assert seq == i and durable == i  # write-through: durable before it is sent
            outs.append(y)
            seqs.append(seq)
        ws.send_text(json.dumps({"op": "close"}))
        assert recv_output(ws)["op"] == "closed"
        seq, _, tail = recv_output(ws)
    assert seq == len(seqs)
    got = np.concatenate([*outs, tail], -1)
    np.testing.assert_allclose(got, offline(model, x), atol=1e-5)


def test_http_api_and_resume(client):
    x = np.random.default_rng(1).standard_normal((1, 3200)).astype(np.float32)
    r = client.post("/v1/sessions", json={"model": "tiny_vad"}).json()
    sid, h = r["session"], {"Authorization": f"Bearer {r['token']}"}
    outs = {}
    for i in range(10):
        body = {"seq": i, "data": x[:, i * 320 : (i + 1) * 320].tolist()}
        resp = client.post(f"/v1/sessions/{sid}/chunks", json=body, headers=h)
        assert resp.status_code == 200, resp.text
        outs[i] = np.asarray(resp.json()["data"], dtype=np.float32)
    again = client.post(f"/v1/sessions/{sid}/chunks", json={"seq": 9, "data": [[0.0]]}, headers=h)
    np.testing.assert_array_equal(np.asarray(again.json()["data"], np.float32), outs[9])
    assert client.post(f"/v1/sessions/{sid}/ack", json={"ack": 4}, headers=h).json() == {"acked": 4}
    res = client.post(f"/v1/sessions/{sid}/resume", json={"ack": 6}, headers=h).json()
    assert res["next_seq"] == 10 and [o["seq"] for o in res["outputs"]] == [7, 8, 9]
    tail = client.post(f"/v1/sessions/{sid}/close", headers=h).json()
    got = np.concatenate([outs[i] for i in range(10)] + [np.asarray(tail["data"], np.float32)], -1)
    np.testing.assert_allclose(got, offline("tiny_vad", x), atol=1e-5)
    gone = client.post(f"/v1/sessions/{sid}/chunks", json={"seq": 10, "data": [[0.0]]}, headers=h)
    assert gone.status_code == 404 and gone.json()["code"] == "unknown_session"


def test_one_client_cannot_touch_another_session(client):
    a = client.post("/v1/sessions", json={"model": "tiny_vad"}).json()
    b = client.post("/v1/sessions", json={"model": "tiny_vad"}).json()
    bad = {"Authorization": f"Bearer {a['token']}"}
    chunk = {"seq": 0, "data": [[0.1] * 64]}
    for path, body in [("chunks", chunk), ("ack", {"ack": 0}), ("resume", {"ack": -1}),
                       ("close", None)]:
        r = client.post(f"/v1/sessions/{b['session']}/{path}", json=body, headers=bad)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized", path
    r = client.post(f"/v1/sessions/{b['session']}/chunks", json=chunk)
    assert r.status_code == 401
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"op": "resume", "session": b["session"], "token": a["token"]}))
        assert json.loads(ws.receive_text())["code"] == "unauthorized"
    # b is untouched: its first chunk is still seq 0
    ok = client.post(f"/v1/sessions/{b['session']}/chunks", json=chunk,
                     headers={"Authorization": f"Bearer {b['token']}"})
    assert ok.status_code == 200 and ok.json()["seq"] == 0


def _frame_bad_magic(x, i):
    f = bytearray(wire.encode(i, x))
    f[0:2] = b"XX"
    return bytes(f)


BAD = {
    "nan": (lambda x, i: wire.encode(i, np.full_like(x, np.nan)), "non_finite"),
    "float64": (lambda x, i: wire.encode(i, x.astype(np.float64)), "bad_dtype"),
    "two_channels": (lambda x, i: wire.encode(i, np.vstack([x, x])), "bad_shape"),
    "out_of_order": (lambda x, i: wire.encode(i + 3, x), "out_of_order"),
    "short": (lambda x, i: b"SW\x01", "bad_frame"),
    "magic": (_frame_bad_magic, "bad_frame"),
    "ragged": (lambda x, i: wire.encode(i, x)[:-2], "bad_frame"),
    "dtype_code": (lambda x, i: wire.encode(i, x)[:3] + b"\x09" + wire.encode(i, x)[4:],
                   "bad_frame"),
}


def test_bad_frames_fail_alone_and_lose_nothing(client):
    x = np.random.default_rng(2).standard_normal((1, 1600)).astype(np.float32)
    outs, other_outs = [], []
    with ws_open(client) as (ws, _), ws_open(client) as (other, _):
        for i in range(5):
            chunk = x[:, i * 320 : (i + 1) * 320]
            for name, (make, code) in BAD.items():
                ws.send_bytes(make(chunk, i))
                err = recv_output(ws)
                assert isinstance(err, dict) and err["code"] == code, (name, err)
            for text, code in [("not json", "bad_request"), ('{"op": "fly"}', "bad_request"),
                               ('{"op": "ack", "ack": "x"}', "bad_request")]:
                ws.send_text(text)
                assert recv_output(ws)["code"] == code
            ws.send_bytes(wire.encode(i, chunk))
            outs.append(recv_output(ws)[2])
            other.send_bytes(wire.encode(i, chunk))
            other_outs.append(recv_output(other)[2])
    ref = offline("tiny_vad", x)
    np.testing.assert_allclose(np.concatenate(outs, -1), ref, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(other_outs, -1), ref, atol=1e-5)


def test_limits(runtime):
    with make_client(runtime, max_sessions_per_client=2, max_chunk_frames=100, max_unacked=3,
                     max_message_bytes=4096) as c:
        a = c.post("/v1/sessions", json={}).json()
        c.post("/v1/sessions", json={})
        r = c.post("/v1/sessions", json={})
        assert r.status_code == 429 and r.json()["code"] == "too_many_sessions"
        h = {"Authorization": f"Bearer {a['token']}"}
        big = c.post(f"/v1/sessions/{a['session']}/chunks", json={"seq": 0, "data": [[0.0] * 200]},
                     headers=h)
        assert big.status_code == 413 and "100" in big.json()["message"]
        huge = c.post(f"/v1/sessions/{a['session']}/chunks",
                      json={"seq": 0, "data": [[0.123456] * 1000]}, headers=h)
        assert huge.status_code == 413 and "4096" in huge.json()["message"]
        for i in range(3):
            c.post(f"/v1/sessions/{a['session']}/chunks", json={"seq": i, "data": [[0.0] * 32]},
                   headers=h)
        r = c.post(f"/v1/sessions/{a['session']}/chunks", json={"seq": 3, "data": [[0.0] * 32]},
                   headers=h)
        assert r.status_code == 409 and r.json()["code"] == "unacked"
        r = c.post(f"/v1/sessions/{a['session']}/chunks",
                   json={"seq": 3, "ack": 2, "data": [[0.0] * 32]}, headers=h)
        assert r.status_code == 200
        assert c.post("/v1/sessions", json={"model": "nope"}).json()["code"] == "unknown_model"


def test_overload_refuses_new_sessions_only(client):
    service = client.app.state.service
    a = client.post("/v1/sessions", json={}).json()
    service.scheduler.load = lambda window=2.0: 0.99
    r = client.post("/v1/sessions", json={})
    assert r.status_code == 503 and r.json()["code"] == "overloaded"
    ok = client.post(f"/v1/sessions/{a['session']}/chunks", json={"seq": 0, "data": [[0.0] * 64]},
                     headers={"Authorization": f"Bearer {a['token']}"})
    assert ok.status_code == 200


def test_idle_sessions_expire(runtime):
    import time

    with make_client(runtime, idle_timeout_s=0.2) as c:
        a = c.post("/v1/sessions", json={}).json()
        time.sleep(0.6)
        r = c.post(f"/v1/sessions/{a['session']}/resume", json={"ack": -1},
                   headers={"Authorization": f"Bearer {a['token']}"})
        assert r.status_code == 404


def test_metrics_health_openapi(client):
    with ws_open(client) as (ws, _):
        for i in range(3):
            ws.send_bytes(wire.encode(i, np.zeros((1, 320), np.float32)))
            recv_output(ws)
        ws.send_bytes(struct.pack("<3s", b"bad"))
        recv_output(ws)
        text = client.get("/metrics").text
    for name in ["streamwise_sessions 1.0", "streamwise_queue_depth",
                 "streamwise_step_seconds_bucket", "streamwise_batch_size_bucket",
                 "streamwise_chunk_latency_seconds_count", "streamwise_chunks_total 3.0",
                 'streamwise_rejected_total{reason="bad_frame"} 1.0']:
        assert name in text, name
    assert client.get("/healthz").json()["ok"] is True
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/sessions", "/v1/sessions/{sid}/chunks", "/v1/sessions/{sid}/close"} <= set(paths)


@pytest.mark.parametrize("msg,code", [
    ({"op": "open", "model": ["tiny_vad"]}, "unknown_model"),
    ({"op": "open", "model": "tiny_vad", "budget_ms": "fast"}, "bad_request"),
    ({"op": "open", "model": "tiny_vad", "budget_ms": -5}, "bad_request"),
    ({"op": "resume", "session": "nope", "token": "x"}, "unknown_session"),
    ({"op": "resume", "session": "nope", "ack": "x"}, "bad_request"),
    ({"op": "ack", "ack": 1}, "bad_request"),
    ([1, 2], "bad_request"),
])
def test_bad_control_messages_keep_the_socket(client, msg, code):
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps(msg))
        assert json.loads(ws.receive_text())["code"] == code
        ws.send_text(json.dumps({"op": "open", "model": "tiny_vad"}))
        assert json.loads(ws.receive_text())["op"] == "opened"


class FlakyStore(MemoryStore):
    """Fails every checkpoint transaction after the first ``ok`` ones."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def put_many(self, items, progress=None):
        self.ok -= 1
        if self.ok < 0:
            raise ConnectionError("store down")
        return super().put_many(items, progress)


def test_a_failing_store_does_not_stop_the_server(runtime):
    service = Service(served_models(runtime), FlakyStore(ok=2), ServeConfig())
    x = np.random.default_rng(6).standard_normal((1, 960)).astype(np.float32)
    with TestClient(create_app(service)) as c:
        r = c.post("/v1/sessions", json={"model": "tiny_vad"}).json()
        h = {"Authorization": f"Bearer {r['token']}"}
        outs = []
        for i in range(3):
            resp = c.post(f"/v1/sessions/{r['session']}/chunks", headers=h,
                          json={"seq": i, "data": x[:, i * 320 : (i + 1) * 320].tolist()})
            assert resp.status_code == 200
            outs.append(np.asarray(resp.json()["data"], np.float32))
            durable = resp.json()["durable_seq"]
        assert durable == 0  # checkpoints after seq 0 failed: durability lags, outputs do not
        np.testing.assert_allclose(np.concatenate(outs, -1), offline("tiny_vad", x)[:, :30],
                                   atol=1e-5)
        health = c.get("/healthz").json()
        # the first failure holds writes back for a moment (no retry per chunk): one failure
        assert health["ok"] and health["store_failures"] == 1 and not health["store_ok"]


def test_resume_finishes_chunks_queued_on_the_old_connection(runtime):
    with make_client(runtime, batch_wait_ms=300) as c:
        r = c.post("/v1/sessions", json={"budget_ms": 60_000}).json()
        with c.websocket_connect("/v1/stream") as a:
            a.send_text(json.dumps({"op": "resume", "session": r["session"], "token": r["token"]}))
            a.receive_text()
            a.send_bytes(wire.encode(0, np.zeros((1, 320), np.float32)))
            with c.websocket_connect("/v1/stream") as b:  # before chunk 0 was stepped
                b.send_text(json.dumps({"op": "resume", "session": r["session"],
                                        "token": r["token"]}))
                resumed = json.loads(b.receive_text())
                assert resumed["next_seq"] == 1 and resumed["pending"] == 1
                assert recv_output(b)[0] == 0


def test_acks_cannot_run_ahead_and_bad_tokens_are_refused(client):
    r = client.post("/v1/sessions", json={}).json()
    h = {"Authorization": f"Bearer {r['token']}"}
    bad = client.post(f"/v1/sessions/{r['session']}/ack", json={"ack": 1000}, headers=h)
    assert bad.status_code == 400 and "beyond" in bad.json()["message"]
    ok = client.post(f"/v1/sessions/{r['session']}/chunks", json={"seq": 0, "data": [[0.0] * 32]},
                     headers=h)
    assert ok.status_code == 200  # the refused ack changed nothing
    with client.websocket_connect("/v1/stream") as ws:
        for msg in ({"op": "resume", "session": r["session"], "token": 123},
                    {"op": "resume", "session": r["session"], "token": r["token"],
                     "ack": 1e400}):
            ws.send_text(json.dumps(msg).replace("Infinity", "1e400"))
            assert json.loads(ws.receive_text())["code"] in ("unauthorized", "bad_request")


def test_idle_expiry_spares_sessions_with_a_live_socket(runtime):
    import time

    with make_client(runtime, idle_timeout_s=0.2) as c, ws_open(c) as (ws, opened):
        time.sleep(0.6)
        assert opened["session"] in c.app.state.service.sessions
        ws.send_bytes(wire.encode(0, np.zeros((1, 320), np.float32)))
        assert recv_output(ws)[0] == 0
