"""Grammar-based fuzz of the ``streamwise serve`` WebSocket protocol, in process.

What every case must get is in ``fuzz_grammar.py``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from streamwise.serve import wire
from tests.serve.conftest import MODELS, make_client
from tests.serve.fuzz_grammar import (
    CONFIG,
    FUZZ_SETTINGS,
    LENGTHS,
    MAX_BYTES,
    MAX_FRAMES,
    MAX_UNACKED,
    MUTS,
    RECV_TIMEOUT_S,
    SEQ_MODES,
    WS_REQUIRED,
    Bystander,
    check_error,
    dumps,
    mutate,
)

# -- WebSocket -------------------------------------------------------------------------------------
FRAME_MUTS = ("magic", "version", "dtype_other", "dtype_bad", "channels0", "channels2",
              "channels_huge", "chan_mismatch", "truncate", "short", "empty", "nan", "oversize_T",
              "oversize_msg", "junk_tail", "ack_none", "ack_beyond", "ack_huge", "ack_neg")
TEXT_KINDS = ("open", "open", "open_bad_model", "resume", "resume", "ack", "ack", "ack", "close",
              "unknown", "no_op", "non_object", "not_json", "oversize", "http_close", "deep")

DATA_FAULTS = ("nan", "nan", "dtype_other", "channels2", "chan_mismatch", "oversize_T",
               "junk_tail", "channels_huge")  # a well-formed frame the chunk checks refuse
OTHER_FAULTS = tuple(m for m in FRAME_MUTS if m not in DATA_FAULTS)


@st.composite
def ws_frame(draw: st.DrawFn) -> tuple[Any, ...]:
    """A chunk frame with none, one or two mutated parts (seq, samples, header/size/ack)."""
    dims = draw(st.sets(st.sampled_from(("seq", "data", "other")), max_size=2))
    mode = draw(st.sampled_from(SEQ_MODES[6:])) if "seq" in dims else "next"
    faults = (draw(st.sampled_from(DATA_FAULTS)),) if "data" in dims else ()
    if "other" in dims:
        faults += (draw(st.sampled_from(OTHER_FAULTS)),)
    return ("frame", mode, draw(st.sampled_from(LENGTHS)), faults, draw(st.integers(0, 2**16)))


WS_FRAME = ws_frame()
WS_BURST = st.tuples(st.just("burst"), st.integers(1, MAX_UNACKED + 1))
WS_TEXT = st.tuples(st.just("text"), st.sampled_from(TEXT_KINDS), MUTS, st.integers(0, 2**16))
WS_CASE = st.tuples(st.sampled_from(("open", "open", "open", "resume_pre", "resume_pre",
                                     "resume_bad", "none")), st.integers(0, 2**16),
                    st.lists(st.one_of(WS_FRAME, WS_FRAME, WS_BURST, WS_TEXT, WS_TEXT),
                             min_size=1, max_size=5))


def recv(ws: Any) -> dict[str, Any]:
    """The next message from the server, failing (not hanging) if none comes."""
    async def get() -> dict[str, Any]:
        with anyio.fail_after(RECV_TIMEOUT_S):
            return await ws._send_rx.receive()  # TestClient's queue of server -> client messages

    try:
        msg = ws.portal.call(get)
    except TimeoutError:
        pytest.fail(f"no reply within {RECV_TIMEOUT_S} s: a reply was lost")
    except (anyio.EndOfStream, anyio.ClosedResourceError):
        pytest.fail("the server's WebSocket handler died (an exception escaped it)")
    assert msg["type"] == "websocket.send", f"unexpected socket event {msg}"
    return msg


def frame_fails_to_decode(frame: bytes) -> bool:
    """The header rules of docs/serve-protocol.md, independently of ``wire.decode``."""
    if len(frame) < wire.HEADER.size:
        return True
    magic, version, code, _, _, channels = wire.HEADER.unpack_from(frame)
    if magic != b"SW" or version != 1 or code not in (1, 2, 3, 4) or channels < 1:
        return True
    return (len(frame) - wire.HEADER.size) % ({1: 4, 2: 8, 3: 2, 4: 2}[code] * channels) != 0


class WsCase:
    """One socket driven by one generated case; ``sess`` is the socket's session if any."""

    def __init__(self, c: TestClient, ws: Any, codes: Counter[str], kinds: Counter[str],
                 bystander: Bystander) -> None:
        self.c, self.ws, self.codes, self.kinds, self.by = c, ws, codes, kinds, bystander
        self.sess: dict[str, Any] | None = None  # sid, token, next, acked, closed, model
        self.known: dict[str, dict[str, Any]] = {}  # every session of this case, by id
        self.outputs: dict[tuple[str, int], bytes] = {}  # (sid, seq) -> samples (idempotence)
        self.done = False  # the socket closed after a successful close
        self.probes = 0

    def remember(self, sid: str, token: str, model: str) -> dict[str, Any]:
        s = self.known.setdefault(sid, {"sid": sid, "token": token, "next": 0, "acked": -1,
                                        "closed": False, "model": model})
        return s

    def check_output(self, raw: bytes, seq: int | None) -> int:
        got_seq, durable, arr = wire.decode(raw)
        assert raw[3] == 1 and arr.shape[0] == 1 and np.isfinite(arr).all()
        assert durable >= -1
        if seq is not None:
            assert got_seq == seq, (got_seq, seq)
        assert self.sess is not None
        key = (self.sess["sid"], got_seq)
        if key in self.outputs:  # a retry or a re-delivery: the same output again
            assert self.outputs[key] == raw[wire.HEADER.size:], f"output {got_seq} changed"
        self.outputs[key] = raw[wire.HEADER.size:]
        self.kinds["output"] += 1
        return got_seq

    # -- binary frames -----------------------------------------------------------------------------
    def frame(self, mode: str, T: int, muts: tuple[str, ...], seed: int) -> None:
        s = self.sess
        nxt, acked = (s["next"], s["acked"]) if s else (0, -1)
        seq = {"next": nxt, "retry": nxt - 1, "gap": nxt + 1 + seed % 4,
               "neg": (-1, -(2**63))[seed % 2], "huge": 2**63 - 1, "acked": max(acked, 0)}[mode]
        seq = min(seq, 2**63 - 1)  # the header's int64 (a resume may have acked beyond it)
        ack = nxt - 1  # a client acknowledges what it got, in the chunk's header
        for m, v in (("ack_none", -1), ("ack_beyond", nxt + 3), ("ack_huge", 2**63 - 1),
                     ("ack_neg", -(2**63))):
            if m in muts:
                ack = v
        code, channels, rows = 1, 1, 1
        if "oversize_T" in muts:
            T = MAX_FRAMES + 1
        if "oversize_msg" in muts:
            T = MAX_BYTES // 4 + 16
        if "dtype_other" in muts:
            code = (2, 3, 4)[seed % 3]
        if "dtype_bad" in muts:
            code = (0, 5, 255)[seed % 3]
        if "channels0" in muts:
            channels = 0
        if "channels2" in muts:
            channels = rows = 2
        if "channels_huge" in muts:
            channels = 2**32 - 1
        if "chan_mismatch" in muts:
            channels = 2
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((rows, T)) * 0.3
        if "nan" in muts and not x.size:
            x = np.zeros((rows, 1))
        if "nan" in muts:
            x.flat[seed % x.size] = (math.nan, math.inf, -math.inf)[seed % 3]
        if code == 3:
            payload = (np.nan_to_num(x, posinf=1, neginf=-1) * 1000).astype("<i2").tobytes()
        else:
            payload = x.astype(wire.DTYPES.get(code, np.dtype("<f4"))).tobytes()
        frame = bytearray(wire.HEADER.pack(b"SW", 1, code, seq, ack, channels) + payload)
        if "magic" in muts:
            frame[0:2] = (b"sw", b"\x00\x00", b"WS", b"S\xff")[seed % 4]
        if "version" in muts:
            frame[2] = (0, 2, 255)[seed % 3]
        if "truncate" in muts:
            frame = frame[: len(frame) - 1 - seed % 3]
        if "short" in muts:
            frame = frame[: seed % wire.HEADER.size]
        if "empty" in muts:
            frame = bytearray()
        if "junk_tail" in muts:
            frame += rng.bytes(1 + seed % 7)
        raw = bytes(frame)
        self.ws.send_bytes(raw)
        msg = recv(self.ws)  # every binary message gets exactly one reply
        clean = set(muts) <= {"ack_none"} and mode == "next"
        held = (s["next"] - 1 - max(s["acked"], ack)) if s else 0  # kept, unacknowledged
        if "bytes" in msg and msg["bytes"] is not None:
            assert len(raw) <= MAX_BYTES and s is not None and not frame_fails_to_decode(raw)
            got = self.check_output(msg["bytes"], seq)
            if got == nxt and ack >= 0:  # a new chunk's ack is applied (a retry's is not)
                s["acked"] = max(s["acked"], ack)
            s["next"] = max(s["next"], got + 1)
            return
        code_ = check_error(json.loads(msg["text"]), self.codes)
        if len(raw) > MAX_BYTES:
            assert code_ == "too_large"
        elif s is None:
            assert code_ == "bad_request"
        elif frame_fails_to_decode(raw):
            assert code_ == "bad_frame"
        else:
            assert json.loads(msg["text"]).get("seq") == seq, msg  # a refused chunk names it
        if clean and s is not None:  # a clean next chunk is refused only for a stated reason
            if s["closed"]:
                assert code_ == "closed", msg
            elif held >= MAX_UNACKED:
                assert code_ == "unacked", msg
            else:
                assert s["model"] != "tiny_vad", f"clean chunk {seq} refused: {msg}"

    def burst(self, k: int) -> None:
        for i in range(k):
            self.frame("next", LENGTHS[i % len(LENGTHS)], ("ack_none",) if i else (), i)

    # -- text messages -----------------------------------------------------------------------------
    def text_message(self, kind: str, muts: tuple[tuple[str, int, int], ...], seed: int
                     ) -> tuple[str, Any]:
        s = self.sess
        pre = next((v for v in self.known.values() if v is not s and not v["closed"]), None)
        if kind == "open":
            return "json", mutate({"op": "open", "model": "tiny_vad", "budget_ms": 100}, muts)
        if kind == "resume":
            target = pre or s or {"sid": "0" * 16, "token": "x", "next": 0}
            sid, token = target["sid"], target["token"]
            if seed % 4 == 1:
                sid = self.by.sid  # another's session with my token
            elif seed % 4 == 2:
                sid = f"{seed:016x}"
            elif seed % 4 == 3:
                token = token[::-1] + "x"
            ack = (-1, -1, target["next"] - 1, target["next"] + 2, 10**30)[seed // 4 % 5]
            return "json", mutate({"op": "resume", "session": sid, "token": token, "ack": ack},
                                  muts)
        if kind == "ack":
            nxt = s["next"] if s else 0
            ack = (nxt - 1, nxt - 1, nxt + 1, -5, 2**63)[seed % 5]
            return "json", mutate({"op": "ack", "ack": ack}, muts)
        if kind == "close":
            return "json", mutate({"op": "close"}, muts)
        if kind == "open_bad_model":
            model = ("nope", "TINY_VAD", "tiny_vad ", 5, ["tiny_vad"], {"name": "tiny_vad"})
            return "json", mutate({"op": "open", "model": model[seed % 6]}, muts)
        if kind == "unknown":
            return "json", mutate({"op": ("ping", "OPEN", "", "op", "closed")[seed % 5]}, muts)
        if kind == "no_op":
            return "json", mutate({"model": "tiny_vad", "ack": 1}, muts)
        if kind == "non_object":
            return "raw", (["op", "open"], '"open"', 42, None, True, 1.5)[seed % 6]
        if kind == "not_json":
            return "text", ('{"op": "open"', "open", "", " ", "{'op': 'open'}", "\x00\x01",
                            '{"op": "ack", "ack": }', "NaN", "[1, 2,")[seed % 9]
        if kind == "oversize":
            return "json", {"op": ("ack", "open", "close")[seed % 3], "pad": "x" * MAX_BYTES}
        if kind == "deep":
            return "text", "[" * 50_000
        raise AssertionError(kind)

    def text(self, kind: str, muts: tuple[tuple[str, int, int], ...], seed: int) -> None:
        if kind == "http_close":
            return self.http_close()
        how, obj = self.text_message(kind, muts, seed)
        text = obj if how == "text" else dumps(obj)
        self.ws.send_text(text)
        self.probes += 1
        probe = f"probe-{self.probes}"
        self.ws.send_text(dumps({"op": probe}))
        window: list[dict[str, Any]] = []
        while True:
            msg = recv(self.ws)
            if msg.get("text") is not None and probe in msg["text"]:
                p = json.loads(msg["text"])
                assert p["op"] == "error" and p["code"] == "bad_request", p
                break
            window.append(msg)
            if msg.get("text") is not None and json.loads(msg["text"]).get("op") == "closed":
                self.closed_reply(json.loads(msg["text"]))
                return
        self.judge(obj if how != "text" else None, text, window)

    def judge(self, obj: Any, text: str, window: list[dict[str, Any]]) -> None:
        """The replies to one text message (all of them: no chunk is in flight)."""
        op = obj.get("op") if isinstance(obj, dict) else None
        if not window:  # only a successful ack is answered with nothing
            assert op == "ack" and self.sess is not None, f"no reply to {text[:200]!r}"
            self.sess["acked"] = max(self.sess["acked"], int(obj["ack"]))
            self.kinds["acked"] += 1
            return
        first = window[0]
        assert first.get("text") is not None, window
        reply = json.loads(first["text"])
        if reply.get("op") == "error":
            assert len(window) == 1, window
            code = check_error(reply, self.codes)
            if len(text.encode()) > MAX_BYTES:
                assert code == "too_large", reply
            elif op in ("open", "resume") and self.sess is not None:
                assert code == "bad_request", reply
            return
        assert self.sess is None and op in ("open", "resume"), (text[:200], reply)
        if reply["op"] == "opened":
            assert op == "open" and len(window) == 1, window
            assert isinstance(reply["session"], str) and isinstance(reply["token"], str)
            assert reply["model"]["name"] in MODELS and reply["model"]["channels"] == 1
            self.sess = self.remember(reply["session"], reply["token"], reply["model"]["name"])
            self.kinds["opened"] += 1
            return
        assert reply["op"] == "resumed" and op == "resume", reply
        sess = self.known.get(reply["session"])
        assert sess is not None and obj["session"] == sess["sid"], "resumed a foreign session"
        assert obj["token"] == sess["token"]
        assert reply["next_seq"] == sess["next"] and reply["model"]["name"] == sess["model"]
        sess["acked"] = max(sess["acked"], int(obj.get("ack", -1)))
        self.sess = sess
        pending = window[1:]
        assert len(pending) == reply["pending"], (reply, len(pending))
        seqs = [self.check_output(m["bytes"], None) for m in pending]
        assert seqs == list(range(sess["acked"] + 1, sess["next"])), seqs
        self.kinds["resumed"] += 1

    def closed_reply(self, reply: dict[str, Any]) -> None:
        s = self.sess
        assert s is not None and not s["closed"] and reply["session"] == s["sid"], reply
        assert reply["tail_seq"] == s["next"], (reply, s)
        tail = recv(self.ws)
        assert tail.get("bytes") is not None, tail
        self.check_output(tail["bytes"], s["next"])
        s["closed"] = True
        self.done = True  # the server ends the socket; nothing more is read
        self.kinds["closed"] += 1

    def http_close(self) -> None:
        """Close the socket's session over HTTP: its further chunks and close get ``closed``."""
        s = self.sess
        if s is None or s["closed"]:
            return
        r = self.c.post(f"/v1/sessions/{s['sid']}/close",
                        headers={"Authorization": f"Bearer {s['token']}"})
        assert r.status_code == 200 and r.json()["seq"] == s["next"], r.text
        s["closed"] = True

    def cleanup(self) -> None:
        """After the socket is gone: close every session of the case that is still open."""
        for s in self.known.values():
            if s["closed"]:
                continue
            r = self.c.post(f"/v1/sessions/{s['sid']}/close",
                            headers={"Authorization": f"Bearer {s['token']}"})
            assert r.status_code == 200, r.text
            assert r.json()["seq"] == s["next"], (r.text, s)


def test_fuzz_websocket_protocol():
    codes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    with make_client(**CONFIG) as c:
        by = Bystander(c)

        @FUZZ_SETTINGS
        @given(case=WS_CASE)
        def run(case: tuple[str, int, list[tuple[Any, ...]]]) -> None:
            start, seed, actions = case
            by.step()
            with c.websocket_connect("/v1/stream") as ws:
                fz = WsCase(c, ws, codes, kinds, by)
                if start.startswith("resume"):  # a session opened over HTTP, resumed here
                    # the longest budget: on a loaded machine the bystander's chunks can wait
                    # past the default one, and the server then (rightly) refuses new opens
                    resp = c.post("/v1/sessions", json={"model": "tiny_vad", "budget_ms": 60000})
                    assert resp.status_code == 200, resp.text
                    r = resp.json()
                    fz.remember(r["session"], r["token"], "tiny_vad")
                    if start == "resume_bad":  # first a wrong token or id, then the right one
                        fz.text("resume", (), (seed & ~3) | (1 + seed % 3))
                    fz.text("resume", (), seed & ~3)
                elif start == "open":
                    fz.text("open", (), 0)
                for a in actions:
                    if fz.done:
                        break
                    if a[0] == "frame":
                        fz.frame(*a[1:])
                    elif a[0] == "burst":
                        fz.burst(a[1])
                    else:
                        fz.text(*a[1:])
            fz.cleanup()

        run()
        by.finish()
        health = c.get("/healthz")
        assert health.status_code == 200 and health.json()["errors"] == 0, health.text
    missing = WS_REQUIRED - set(codes)
    assert not missing, f"the fuzz never produced {missing}: {dict(codes)}"
    assert min(kinds[k] for k in ("opened", "resumed", "closed", "output", "acked")) > 0, kinds



# -- regressions the fuzz found ----------------------------------------------------------------
def test_ws_open_with_a_budget_beyond_float_range_gets_bad_request():
    with make_client(**CONFIG) as c, c.websocket_connect("/v1/stream") as ws:
        ws.send_text('{"op": "open", "model": "tiny_vad", "budget_ms": 1' + "0" * 400 + "}")
        err = json.loads(recv(ws)["text"])
        assert err["op"] == "error" and err["code"] == "bad_request", err
        ws.send_text('{"op": "open", "model": "tiny_vad"}')  # the socket stays usable
        assert json.loads(recv(ws)["text"])["op"] == "opened"


def test_ws_deeply_nested_json_gets_bad_request():
    with make_client(**CONFIG) as c, c.websocket_connect("/v1/stream") as ws:
        ws.send_text("[" * 50_000)
        err = json.loads(recv(ws)["text"])
        assert err["op"] == "error" and err["code"] == "bad_request", err
        ws.send_text('{"op": "open", "model": "tiny_vad"}')
        assert json.loads(recv(ws)["text"])["op"] == "opened"
