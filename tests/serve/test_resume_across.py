"""A session opened on one transport (or server process) is resumed on another, exactly.

WebSocket -> HTTP and HTTP -> WebSocket: in one process, across a SIGKILL and restart on the same
store (SQLite, Redis), from one server process to another sharing a Redis store, and between two
replicas of a shared store (the Ray Serve setting, without Ray).  The application consumes
outputs in seq order; whatever the split, it consumes 0, 1, ..., n-1 once each, a re-delivered
output equals the one first heard, and with the close tail they equal the offline output.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from streamwise.serve import wire
from streamwise.serve.app import create_app
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import SQLiteStore
from tests.serve.conftest import MODELS, ServerProcess, make_client
from tests.serve.test_durability import offline

CHUNK = 320
RECV_TIMEOUT_S = 60  # a missing reply fails the test instead of hanging it


def signal_of(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((1, CHUNK * n)) * 0.3).astype(np.float32)


# -- transports ------------------------------------------------------------------------------------
class LocalSocket:
    """A WebSocket on an in-process app (Starlette's TestClient)."""

    def __init__(self, client: TestClient) -> None:
        self._cm = client.websocket_connect("/v1/stream")
        self._ws = self._cm.__enter__()
        self._open = True

    def send(self, msg: bytes | str) -> None:
        if isinstance(msg, bytes):
            self._ws.send_bytes(msg)
        else:
            self._ws.send_text(msg)

    def recv(self) -> bytes | str:
        m = self._ws.receive()
        assert m["type"] == "websocket.send", f"socket closed: {m}"
        return m["bytes"] if m.get("bytes") is not None else m["text"]

    def drop(self) -> None:
        """The connection goes away (the session is not closed by this)."""
        if self._open:
            self._open = False
            self._cm.__exit__(None, None, None)


class RealSocket:
    """A WebSocket on a ``streamwise serve`` process."""

    def __init__(self, url: str) -> None:
        self._cm = connect(url.replace("http", "ws") + "/v1/stream", max_size=None,
                           compression=None, open_timeout=10)
        self._ws = self._cm.__enter__()

    def send(self, msg: bytes | str) -> None:
        self._ws.send(msg)

    def recv(self) -> bytes | str:
        return self._ws.recv(timeout=RECV_TIMEOUT_S)

    def drop(self) -> None:
        self._cm.__exit__(None, None, None)


# -- the application -------------------------------------------------------------------------------
class App:
    """One session as the application sees it, whatever carries it.

    ``consumed`` is what the application has taken, in order; ``heard`` every output that reached
    it (a re-delivery must be the same output).  It keeps every chunk (a real client keeps those
    after ``durable``); ``durable`` is the highest ``durable_seq`` heard, which a resumed server
    may not lose."""

    def __init__(self, x: np.ndarray) -> None:
        self.chunks = [x[:, a : a + CHUNK] for a in range(0, x.shape[1], CHUNK)]
        self.session = self.token = ""
        self.next_seq = 0
        self.sent_ack = -1  # highest ack sent to any server
        self.durable = -1
        self.consumed: list[tuple[int, np.ndarray]] = []
        self.heard: dict[int, np.ndarray] = {}

    @property
    def last(self) -> int:
        return self.consumed[-1][0] if self.consumed else -1

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def hear(self, seq: int, y: np.ndarray, durable: int, consume: bool = True) -> None:
        assert 0 <= seq < self.next_seq, f"output {seq} for a chunk never sent"
        if seq in self.heard:
            np.testing.assert_array_equal(y, self.heard[seq], err_msg=f"output {seq} changed")
        self.heard[seq] = y
        self.durable = max(self.durable, durable)
        if consume:
            assert seq == self.last + 1, f"consumed {seq} after {self.last}: a gap or duplicate"
            self.consumed.append((seq, y))

    def forget_after(self, ack: int) -> None:
        """The application kept only the outputs up to ``ack`` (it resumes from there)."""
        assert self.sent_ack <= ack <= self.last
        self.consumed = [(s, y) for s, y in self.consumed if s <= ack]

    def caught_up(self, server_next: int, pending: list[int], ack: int, restarted: bool) -> None:
        """Check a resume's answer; returns nothing, raises on a lost or surplus output."""
        assert server_next > self.durable, \
            f"resumed at seq {server_next}, but outputs up to {self.durable} were durable"
        assert server_next <= self.next_seq
        if not restarted:
            assert server_next == self.next_seq, "a live server lost chunks it had accepted"
        assert pending == list(range(ack + 1, server_next)), \
            f"resume(ack={ack}) returned {pending}, not every output after the ack"

    def check(self, model: str, x: np.ndarray, tail_seq: int, tail: np.ndarray) -> None:
        n = len(self.chunks)
        assert [s for s, _ in self.consumed] == list(range(n))
        assert tail_seq == n
        got = np.concatenate([y for _, y in self.consumed] + [tail], -1)
        np.testing.assert_allclose(got, offline(model, x), atol=1e-5)


class WsLeg:
    """The session over one WebSocket."""

    def __init__(self, app: App, sock: Any) -> None:
        self.app, self.sock = app, sock

    def _control(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.sock.send(json.dumps(msg))
        reply = json.loads(self.sock.recv())
        assert reply.get("op") != "error", reply
        return reply

    def _output(self) -> tuple[int, np.ndarray, int]:
        """The next output frame: ``(seq, [C', T'], durable_seq)``."""
        msg = self.sock.recv()
        assert isinstance(msg, bytes), f"expected an output, got {msg}"
        seq, durable, y = wire.decode(msg)
        return seq, y.copy(), durable

    def open(self, model: str) -> None:
        r = self._control({"op": "open", "model": model})
        self.app.session, self.app.token = r["session"], r["token"]

    def send(self, upto: int) -> None:
        while self.app.next_seq < upto:
            s = self.app.next_seq
            self.sock.send(wire.encode(s, self.app.chunks[s], ack=self.app.sent_ack))
            self.app.next_seq += 1

    def receive(self, count: int) -> None:
        for _ in range(count):
            self.app.hear(*self._output())

    def ack(self, seq: int) -> None:
        if seq >= 0:
            self.sock.send(json.dumps({"op": "ack", "ack": seq}))
            self.app.sent_ack = max(self.app.sent_ack, seq)

    def resume(self, ack: int, restarted: bool = False) -> None:
        a = self.app
        a.forget_after(ack)
        r = self._control({"op": "resume", "session": a.session, "token": a.token, "ack": ack})
        a.sent_ack = max(a.sent_ack, ack)
        outs = [self._output() for _ in range(r["pending"])]
        a.caught_up(r["next_seq"], [o[0] for o in outs], ack, restarted)
        for o in outs:
            a.hear(*o)
        for s in range(r["next_seq"], a.next_seq):  # what a restarted server lost: re-send
            self.sock.send(wire.encode(s, a.chunks[s], ack=ack))
        for s in range(r["next_seq"], a.next_seq):
            seq, y, durable = self._output()
            assert seq == s
            a.hear(seq, y, durable, consume=seq > ack)  # acknowledged ones were consumed

    def stream_to_end(self) -> None:
        while self.app.next_seq < len(self.app.chunks):
            self.send(self.app.next_seq + 1)
            self.receive(1)

    def close(self) -> tuple[int, np.ndarray]:
        self.sock.send(json.dumps({"op": "close"}))
        closed = json.loads(self.sock.recv())
        assert closed.get("op") == "closed", closed
        seq, tail, _ = self._output()
        assert seq == closed["tail_seq"]
        self.drop()
        return seq, tail

    def drop(self) -> None:
        self.sock.drop()


class HttpLeg:
    """The session over HTTP calls (``http``: a TestClient or an ``httpx.Client``)."""

    def __init__(self, app: App, http: Any) -> None:
        self.app, self.http = app, http

    def _post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.http.post(f"/v1/sessions{path}", json=body, headers=self.app.auth)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def open(self, model: str) -> None:
        r = self._post("", {"model": model})
        self.app.session, self.app.token = r["session"], r["token"]

    def _push(self, seq: int, ack: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"seq": seq, "data": self.app.chunks[seq].tolist()}
        if ack is not None:
            body["ack"] = ack
        return self._post(f"/{self.app.session}/chunks", body)

    def push(self, upto: int, heard: int | None = None) -> None:
        """Send chunks up to ``upto``; replies after the first ``heard`` are lost on the way."""
        while self.app.next_seq < upto:
            s = self.app.next_seq
            self.app.next_seq += 1
            r = self._push(s)
            assert r["seq"] == s
            if heard is None or s < heard:
                self.app.hear(s, np.asarray(r["data"], np.float32), r["durable_seq"])

    def ack(self, seq: int) -> None:
        if seq >= 0:
            assert self._post(f"/{self.app.session}/ack", {"ack": seq})["acked"] >= seq
            self.app.sent_ack = max(self.app.sent_ack, seq)

    def resume(self, ack: int, restarted: bool = False) -> None:
        a = self.app
        a.forget_after(ack)
        r = self._post(f"/{a.session}/resume", {"ack": ack})
        a.sent_ack = max(a.sent_ack, ack)
        outs = r["outputs"]
        a.caught_up(r["next_seq"], [o["seq"] for o in outs], ack, restarted)
        for o in outs:
            a.hear(o["seq"], np.asarray(o["data"], np.float32), r["durable_seq"])
        for s in range(r["next_seq"], a.next_seq):  # what a restarted server lost: re-send
            p = self._push(s, ack=ack)
            assert p["seq"] == s
            a.hear(s, np.asarray(p["data"], np.float32), p["durable_seq"], consume=s > ack)

    def stream_to_end(self) -> None:
        self.push(len(self.app.chunks))

    def close(self) -> tuple[int, np.ndarray]:
        r = self._post(f"/{self.app.session}/close")
        return r["seq"], np.asarray(r["data"], np.float32)

    def drop(self) -> None:
        pass


# -- one crossing ----------------------------------------------------------------------------------
def first_leg(leg: WsLeg | HttpLeg, model: str, sent: int, heard: int, acked: int) -> None:
    """Open, send ``sent`` chunks, hear the first ``heard`` outputs, acknowledge ``acked``."""
    leg.open(model)
    if isinstance(leg, WsLeg):
        leg.send(sent)  # all at once: the rest are in flight when the socket goes
        leg.receive(heard)
    else:
        leg.push(sent, heard=heard)
    leg.ack(acked)


def second_leg(leg: WsLeg | HttpLeg, model: str, x: np.ndarray, resume_ack: int,
               restarted: bool = False) -> None:
    leg.resume(resume_ack, restarted)
    leg.stream_to_end()
    tail_seq, tail = leg.close()
    leg.app.check(model, x, tail_seq, tail)


@st.composite
def splits(draw: Any, n: int) -> tuple[int, int, int, int]:
    """(chunks sent on the first leg, outputs heard, acknowledged up to, the resume's ack)."""
    sent = draw(st.integers(0, n))
    heard = draw(st.integers(0, sent))
    acked = draw(st.integers(-1, heard - 1))
    return sent, heard, acked, draw(st.integers(acked, heard - 1))


N = 16  # chunks in the whole stream


@pytest.fixture(scope="module")
def local():
    with make_client() as c:  # one app for every example
        yield c


def _cross(http: Any, ws_factory: Any, direction: str, model: str, x: np.ndarray,
           split: tuple[int, int, int, int], restart: Any = None) -> None:
    sent, heard, acked, resume_ack = split
    app = App(x)
    first: WsLeg | HttpLeg = WsLeg(app, ws_factory()) if direction == "ws->http" \
        else HttpLeg(app, http())
    second: WsLeg | HttpLeg | None = None
    try:
        first_leg(first, model, sent, heard, acked)
        first.drop()
        if restart is not None:
            restart()
        second = HttpLeg(app, http()) if direction == "ws->http" else WsLeg(app, ws_factory())
        second_leg(second, model, x, resume_ack, restarted=restart is not None)
    finally:  # an in-process socket left open would hang the app's shutdown
        for leg in (first, second):
            if leg is not None:
                leg.drop()


@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(split=splits(16), seed=st.integers(0, 100))
@pytest.mark.parametrize("direction", ["ws->http", "http->ws"])
def test_resume_on_the_other_transport(local, direction, split, seed):
    _cross(lambda: local, lambda: LocalSocket(local), direction, "tiny_vad",
           signal_of(seed, N), split)


@pytest.mark.parametrize("direction", ["ws->http", "http->ws"])
@pytest.mark.parametrize("split", [(10, 6, 3, 5), (12, 0, -1, -1), (16, 16, 15, 15)])
def test_denoiser_resumes_on_the_other_transport(local, direction, split):
    _cross(lambda: local, lambda: LocalSocket(local), direction, "denoiser",
           signal_of(7, N), split)


# -- across a SIGKILL and restart on the same store ----------------------------------------------
def _crash_both_ways(server: ServerProcess, other: ServerProcess | None, model: str,
                     splits: list[tuple[int, int, int, int]]) -> None:
    """Per split, one session opened each way on ``server``; ``server`` is killed; each is
    resumed on the other transport, on ``other`` (or on ``server`` restarted on its store)."""
    x = signal_of(11, N)
    runs: list[tuple[App, str, tuple[int, int, int, int]]] = []
    with httpx.Client(base_url=server.url, timeout=RECV_TIMEOUT_S) as h:
        for split in splits:
            for direction in ("ws->http", "http->ws"):
                app = App(x)
                sent, heard, acked, _ = split
                leg = WsLeg(app, RealSocket(server.url)) if direction == "ws->http" \
                    else HttpLeg(app, h)
                first_leg(leg, model, sent, heard, acked)
                runs.append((app, direction, split))
                if direction == "http->ws":
                    leg.drop()
    server.kill()  # the sockets die with it
    if other is None:
        server.start()  # same port, same store
        other = server
    with httpx.Client(base_url=other.url, timeout=RECV_TIMEOUT_S) as h:
        for app, direction, split in runs:
            second: WsLeg | HttpLeg = HttpLeg(app, h) if direction == "ws->http" \
                else WsLeg(app, RealSocket(other.url))
            second_leg(second, model, x, split[3], restarted=True)


CRASH_SPLITS = [(10, 6, 3, 5), (9, 9, -1, 8), (0, 0, -1, -1)]


def test_resume_on_the_other_transport_after_sigkill(tmp_path):
    """SQLite; Redis is the store of ``test_failover_to_another_process_on_the_same_redis``
    (a restart per store costs two server starts, ~10 s on two cores)."""
    server = ServerProcess(f"sqlite:{tmp_path / 'sessions.db'}").start()
    try:
        _crash_both_ways(server, None, "tiny_vad", CRASH_SPLITS)
    finally:
        server.stop()


def test_sparse_checkpoints_lost_work_is_resent_on_the_other_transport(tmp_path):
    """Checkpoints every 4 chunks: the restarted server has lost outputs the client heard (some
    acknowledged); the client re-sends those chunks on the new transport."""
    server = ServerProcess(f"sqlite:{tmp_path / 's.db'}", extra=["--checkpoint-every", "4"]
                           ).start()
    try:
        _crash_both_ways(server, None, "tiny_vad", [(10, 10, 8, 9), (11, 10, 9, 9),
                                                    (7, 6, 2, 5)])
    finally:
        server.stop()


def test_failover_to_another_process_on_the_same_redis(redis_url):
    """Two plain ``streamwise serve`` processes on one Redis: A dies, B resumes A's sessions."""
    a, b = ServerProcess(redis_url), ServerProcess(redis_url)  # two ports, one store
    with ThreadPoolExecutor(2) as pool:  # start both at once
        list(pool.map(ServerProcess.start, (a, b)))
    try:
        _crash_both_ways(a, b, "tiny_vad", CRASH_SPLITS)
    finally:
        a.stop()
        b.stop()


# -- replicas of one shared store (what Ray Serve runs, without Ray) ------------------------------
def _replica(path: Path) -> TestClient:
    service = Service(MODELS, SQLiteStore(path), ServeConfig(shared_store=True))
    return TestClient(create_app(service, reap_every_s=0.05), client=("127.0.0.1", 5000))


def test_session_moves_between_shared_store_replicas(tmp_path):
    """WS on replica A, HTTP on B, WS on A again, close on B: each hop resumes exactly."""
    x = signal_of(13, 24)
    with _replica(tmp_path / "s.db") as a, _replica(tmp_path / "s.db") as b:
        app = App(x)
        socks: list[LocalSocket] = []

        def on(replica: TestClient) -> WsLeg:
            socks.append(LocalSocket(replica))
            return WsLeg(app, socks[-1])

        try:
            ws = on(a)
            ws.open("tiny_vad")
            ws.send(6)
            ws.receive(6)
            ws.ack(3)
            ws.drop()
            http = HttpLeg(app, b)
            http.resume(4)
            http.push(12)
            http.ack(9)
            ws = on(a)  # back on A, which must not serve its old copy
            ws.resume(11)
            ws.send(18)
            ws.receive(6)
            ws.drop()
            second_leg(HttpLeg(app, b), "tiny_vad", x, 17)
        finally:
            for sock in socks:
                sock.drop()
