"""A replica still holding a session that a client moved elsewhere cannot move the store back.

Replica A keeps a WebSocket on the session; the client resumes on replica B and streams on;
then A steps one more chunk on its old copy.  A's checkpoint is behind B's, so the store refuses
it: the stored session stays B's, A's reply does not call its output durable, and a third
replica resumes exactly where B left off.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from streamwise.serve import wire
from streamwise.serve.app import create_app
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.sessions import Session
from streamwise.serve.store import SQLiteStore
from tests.serve.conftest import MODELS
from tests.serve.test_durability import offline


def _replica(path: Path) -> TestClient:
    service = Service(MODELS, SQLiteStore(path), ServeConfig(shared_store=True))
    return TestClient(create_app(service, reap_every_s=0.05), client=("127.0.0.1", 5000))


def test_a_stale_replica_cannot_move_the_store_back(tmp_path):
    x = np.random.default_rng(8).standard_normal((1, 320 * 12)).astype(np.float32) * 0.3
    chunk = [x[:, i * 320 : (i + 1) * 320] for i in range(12)]
    outs: dict[int, np.ndarray] = {}
    with _replica(tmp_path / "s.db") as a, _replica(tmp_path / "s.db") as b, \
            _replica(tmp_path / "s.db") as c, a.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"op": "open", "model": "tiny_vad"}))
        opened = json.loads(ws.receive_text())
        sid, h = opened["session"], {"Authorization": f"Bearer {opened['token']}"}
        for i in range(4):
            ws.send_bytes(wire.encode(i, chunk[i]))
            seq, durable, outs[i] = wire.decode(ws.receive_bytes())
            assert seq == durable == i
        # the client moves to B (A's socket is still open, as when a network path half-fails)
        r = b.post(f"/v1/sessions/{sid}/resume", json={"ack": 3}, headers=h).json()
        assert r["next_seq"] == 4 and r["outputs"] == []
        for i in range(4, 8):
            got = b.post(f"/v1/sessions/{sid}/chunks", json={"seq": i, "data": chunk[i].tolist()},
                         headers=h).json()
            assert got["durable_seq"] == i
            outs[i] = np.asarray(got["data"], np.float32)
        # A steps its old copy once more: its checkpoint (next_seq 5) is behind B's (8)
        ws.send_bytes(wire.encode(4, chunk[4]))
        seq, durable, y = wire.decode(ws.receive_bytes())
        assert seq == 4 and durable == 3, "A must not call an output durable it could not store"
        np.testing.assert_allclose(y, outs[4], atol=1e-6)
        store = a.app.state.service.store  # type: ignore[attr-defined]
        blob = store.get(sid)
        assert blob is not None and Session.from_blob(blob, MODELS).next_seq == 8
        assert a.app.state.service.scheduler.stale_writes == 1  # type: ignore[attr-defined]
        # the client trusted B's durable_seq 7 and kept no chunk before 8: C resumes from there
        r = c.post(f"/v1/sessions/{sid}/resume", json={"ack": 7}, headers=h).json()
        assert r["next_seq"] == 8
        for i in range(8, 12):
            got = c.post(f"/v1/sessions/{sid}/chunks", json={"seq": i, "data": chunk[i].tolist()},
                         headers=h).json()
            outs[i] = np.asarray(got["data"], np.float32)
        tail = c.post(f"/v1/sessions/{sid}/close", headers=h).json()
    got_all = np.concatenate([outs[i] for i in range(12)]
                             + [np.asarray(tail["data"], np.float32)], -1)
    np.testing.assert_allclose(got_all, offline("tiny_vad", x), atol=1e-5)
