"""Grammar-based fuzz of the ``streamwise serve`` HTTP API, in process.

What every case must get is in ``fuzz_grammar.py``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.serve.conftest import MODELS, make_client
from tests.serve.fuzz_grammar import (
    CONFIG,
    FUZZ_SETTINGS,
    HTTP_REQUIRED,
    LENGTHS,
    MAX_BYTES,
    MAX_FRAMES,
    MAX_UNACKED,
    MUTS,
    OPT_INT,
    SEQ_MODES,
    Bystander,
    check_error,
    dumps,
    mutate,
)

# -- HTTP ------------------------------------------------------------------------------------------
TARGETS = ("own",) * 12 + ("unknown", "long", "bystander", "dotted")
AUTHS = ("right",) * 12 + ("wrong", "missing", "basic", "empty_bearer", "bystander", "lower")
RAW = ("json",) * 14 + ("not_json", "non_object", "empty", "text_plain", "no_ctype", "oversize",
                       "bad_utf8", "deep", "bigint")
DATA_MUTS = ("nan", "inf", "overflow", "two_rows", "ragged", "flat", "empty_rows", "deep",
             "strings", "too_long", "ack_none", "ack_beyond")


@st.composite
def http_chunk(draw: st.DrawFn) -> tuple[Any, ...]:
    """A chunk call with none, one or two mutated parts."""
    dims = draw(st.sets(st.sampled_from(("seq", "data", "fields", "target", "auth", "raw")),
                        max_size=2))
    return ("chunk", draw(st.sampled_from(SEQ_MODES[6:])) if "seq" in dims else "next",
            draw(st.sampled_from(LENGTHS)),
            (draw(st.sampled_from(DATA_MUTS)),) if "data" in dims else (),
            draw(MUTS.filter(bool)) if "fields" in dims else (),
            draw(st.sampled_from(TARGETS[12:])) if "target" in dims else "own",
            draw(st.sampled_from(AUTHS[12:])) if "auth" in dims else "right",
            draw(st.sampled_from(RAW[14:])) if "raw" in dims else "json",
            draw(st.integers(0, 2**16)))


HTTP_CHUNK = http_chunk()
HTTP_ACTION = st.one_of(
    HTTP_CHUNK, HTTP_CHUNK,
    st.tuples(st.just("chunk"), st.just("next"), st.just(32), st.just(()), st.just(()),
              st.just("own"), st.just("right"), st.just("json"), st.integers(0, 2**16)),
    st.tuples(st.just("burst"), st.sampled_from((1, 2, 3, MAX_UNACKED + 1))),
    st.tuples(st.sampled_from(("ack", "resume")), st.integers(0, 5), MUTS,
              st.sampled_from(TARGETS), st.sampled_from(AUTHS), st.sampled_from(RAW)),
    st.tuples(st.just("open"), MUTS, st.sampled_from(RAW), st.integers(0, 2**16)),
    st.tuples(st.just("close"), st.sampled_from(("own", *TARGETS[12:])),  # mostly refused
              st.sampled_from(AUTHS)),
)
HTTP_CASE = st.lists(HTTP_ACTION, min_size=1, max_size=5)


class HttpCase:
    """One session driven over HTTP by one generated case."""

    def __init__(self, c: TestClient, codes: Counter[str], kinds: Counter[str],
                 bystander: Bystander) -> None:
        self.c, self.codes, self.kinds, self.by = c, codes, kinds, bystander
        r = c.post("/v1/sessions", json={"model": "tiny_vad"})
        assert r.status_code == 200, r.text
        self.sid, self.token = r.json()["session"], r.json()["token"]
        self.next, self.acked, self.closed = 0, -1, False
        self.outputs: dict[int, list[list[float]]] = {}
        self.opened: list[tuple[str, str]] = []  # sessions the fuzz opened: closed at the end

    def url(self, target: str, what: str) -> str:
        sid = {"own": self.sid, "unknown": "0123456789abcdef", "long": "a" * 70,
               "bystander": self.by.sid, "dotted": "x.y~z_-"}[target]
        return f"/v1/sessions/{sid}/{what}"

    def auth(self, auth: str) -> dict[str, str]:
        tok = self.token
        return {"right": {"Authorization": f"Bearer {tok}"},
                "wrong": {"Authorization": f"Bearer {tok[::-1]}x"},
                "missing": {},
                "basic": {"Authorization": f"Basic {tok}"},
                "empty_bearer": {"Authorization": "Bearer "},
                "bystander": {"Authorization": f"Bearer {self.by.token}"},
                "lower": {"Authorization": f"bearer {tok}"}}[auth]

    def body(self, obj: Any, raw: str, seed: int) -> tuple[bytes, dict[str, str]]:
        ctype = {"content-type": "application/json"}
        if raw == "not_json":
            return (b"{", b"{\"seq\": 0,", b"seq=0", b"\x00", b"{'ack': 1}")[seed % 5], ctype
        if raw == "non_object":
            return (b"[]", b"42", b"null", b"\"ack\"", b"true")[seed % 5], ctype
        if raw == "empty":
            return b"", ctype
        if raw == "oversize":
            return dumps({"pad": "x" * MAX_BYTES, **(obj if isinstance(obj, dict) else {})}
                         ).encode(), ctype
        if raw == "bad_utf8":
            return b'{"model": "\xff\xfe", "ack": 1, "seq": 0, "data": [[0.0]]}', ctype
        if raw == "deep":
            return b"[" * 5000 + b"]" * 5000, ctype
        if raw == "bigint":
            return b'{"ack": 1' + b"0" * 5000 + b"}", ctype
        text = dumps(obj).encode()
        if raw == "text_plain":
            return text, {"content-type": "text/plain"}
        if raw == "no_ctype":
            return text, {}
        return text, ctype

    def call(self, path: str, content: bytes | None, headers: dict[str, str]) -> Any:
        r = self.c.post(path, content=content, headers=headers)
        if r.status_code >= 300:
            return r.status_code, check_error(r.json(), self.codes, r.status_code), r.json()
        assert r.status_code == 200, r.text
        return 200, None, r.json()

    def expect_refusal(self, target: str, auth: str, got: str | None, raw: str,
                       clean: bool) -> bool:
        """What a clean, well-formed request to the wrong place must get; True if refused."""
        if raw == "oversize":
            assert got == "too_large"
            return True
        if not clean or raw != "json":
            return got is not None
        if target in ("unknown", "long", "dotted") or (target == "own" and self.closed):
            assert got == "unknown_session"
            return True
        if target == "bystander" or (target == "own" and auth not in ("right", "lower")):
            assert got == "unauthorized"
            return True
        return got is not None

    def chunk(self, mode: str, T: int, dmuts: tuple[str, ...], muts: Any, target: str,
              auth: str, raw: str, seed: int) -> None:
        if target == "bystander" and auth == "bystander":
            auth = "wrong"  # the bystander's own token would legitimately change it
        seq = {"next": self.next, "retry": self.next - 1, "gap": self.next + 1 + seed % 4,
               "neg": (-1, -(2**63))[seed % 2], "huge": 2**63, "acked": max(self.acked, 0)}[mode]
        rng = np.random.default_rng(seed)
        x: Any = (rng.standard_normal((1, T)) * 0.3).astype(np.float32).tolist()
        body: dict[str, Any] = {"seq": seq, "data": x}
        if "nan" in dmuts or "inf" in dmuts or "overflow" in dmuts:
            bad = math.nan if "nan" in dmuts else math.inf if "inf" in dmuts else 1e39
            x[0] = [*x[0], bad]
        if "two_rows" in dmuts:
            body["data"] = [x[0], x[0]]
        if "ragged" in dmuts:
            body["data"] = [x[0], [*x[0], 0.0]]
        if "flat" in dmuts:
            body["data"] = x[0]
        if "empty_rows" in dmuts:
            body["data"] = []
        if "deep" in dmuts:
            body["data"] = [[x[0]]]
        if "strings" in dmuts:
            body["data"] = [[str(v) for v in x[0]] + ["zero"]]
        if "too_long" in dmuts:
            body["data"] = [[0.0] * (MAX_FRAMES + 1)]
        if "ack_none" not in dmuts:
            body["ack"] = self.next - 1  # a client acknowledges what it got
        if "ack_beyond" in dmuts:
            body["ack"] = self.next + 3
        body = mutate(body, muts)
        sent_ack = body["ack"] if isinstance(body.get("ack"), int) else -1
        held = self.next - 1 - max(self.acked, sent_ack)  # kept, unacknowledged
        content, ctype = self.body(body, raw, seed)
        status, code, reply = self.call(self.url(target, "chunks"), content,
                                        {**ctype, **self.auth(auth)})
        clean = set(dmuts) <= {"ack_none"} and not muts and mode == "next" and raw == "json"
        if self.expect_refusal(target, auth, code, raw, clean):
            if clean and target == "own" and code not in ("unknown_session", "unauthorized"):
                assert code == "unacked" and held >= MAX_UNACKED, (reply, held)
            return
        assert target == "own" and auth in ("right", "lower") and not self.closed, reply
        assert not (clean and held >= MAX_UNACKED), f"{held} unacknowledged, yet accepted"
        assert reply["seq"] == body["seq"] and isinstance(reply["durable_seq"], int), reply
        assert len(reply["data"]) == 1 and all(math.isfinite(v) for v in reply["data"][0])
        if reply["seq"] in self.outputs:  # retries are idempotent
            assert self.outputs[reply["seq"]] == reply["data"], "a retried chunk changed output"
        self.outputs[reply["seq"]] = reply["data"]
        if reply["seq"] == self.next:
            self.next += 1
            ack = OPT_INT.validate_python(body.get("ack"))  # as the server read it
            if ack is not None:
                self.acked = max(self.acked, ack)
        self.kinds["chunk"] += 1

    def burst(self, k: int) -> None:
        for i in range(k):
            self.chunk("next", LENGTHS[i % len(LENGTHS)], ("ack_none",) if i else (), (), "own",
                       "right", "json", i)

    def ack_or_resume(self, what: str, choice: int, muts: Any, target: str, auth: str,
                      raw: str) -> None:
        if target == "bystander" and auth == "bystander":
            auth = "wrong"
        ack = (self.next - 1, self.next - 1, -1, self.next + 2, 2**63, -(2**70))[choice]
        body = mutate({"ack": ack}, muts)
        content, ctype = self.body(body, raw, choice)
        status, code, reply = self.call(self.url(target, what), content,
                                        {**ctype, **self.auth(auth)})
        clean = not muts and raw == "json"
        if self.expect_refusal(target, auth, code, raw, clean):
            if clean and target == "own" and code not in ("unknown_session", "unauthorized"):
                assert what == "ack" and code == "bad_request" and ack > self.next - 1, reply
            return
        assert target == "own" and auth in ("right", "lower") and not self.closed, reply
        assert not (clean and what == "ack" and ack > max(self.acked, self.next - 1)), reply
        if what == "ack":
            assert set(reply) == {"acked"} and reply["acked"] >= self.acked, reply
            self.acked = reply["acked"]
            self.kinds["ack"] += 1
            return
        assert reply["session"] == self.sid and reply["next_seq"] == self.next, reply
        seqs = [o["seq"] for o in reply["outputs"]]
        assert seqs == sorted(seqs) and all(s > self.acked for s in seqs), reply
        for o in reply["outputs"]:
            assert self.outputs[o["seq"]] == o["data"], "resume returned a different output"
        self.acked = max(self.acked, OPT_INT.validate_python(body["ack"]))  # as it read it
        assert seqs == list(range(self.acked + 1, self.next)), (seqs, self.acked)
        self.kinds["resume"] += 1

    def open(self, muts: Any, raw: str, seed: int) -> None:
        model = ("tiny_vad", "tiny_vad", "tiny_vad", "nope", "TINY_VAD", "", "denoiser")[seed % 7]
        body = mutate({"model": model, "budget_ms": 100}, muts)
        content, ctype = self.body(body, raw, seed)
        status, code, reply = self.call("/v1/sessions", content, ctype)
        if raw == "oversize":
            assert code == "too_large", reply
        if code is None:
            assert isinstance(reply["session"], str) and isinstance(reply["token"], str)
            assert reply["model"]["name"] in MODELS, reply
            self.opened.append((reply["session"], reply["token"]))
            self.kinds["open"] += 1

    def close(self, target: str, auth: str) -> None:
        if target == "bystander" and auth == "bystander":
            auth = "wrong"
        status, code, reply = self.call(self.url(target, "close"), None, self.auth(auth))
        if self.expect_refusal(target, auth, code, "json", True):
            return
        assert target == "own" and not self.closed and reply["seq"] == self.next, reply
        assert len(reply["data"]) == 1, reply
        self.closed = True
        self.kinds["close"] += 1

    def cleanup(self) -> None:
        if not self.closed:
            self.close("own", "right")
        for sid, token in self.opened:
            r = self.c.post(f"/v1/sessions/{sid}/close",
                            headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text


def test_fuzz_http_protocol():
    codes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    with make_client(**CONFIG) as c:
        by = Bystander(c)

        @FUZZ_SETTINGS
        @given(actions=HTTP_CASE)
        def run(actions: list[tuple[Any, ...]]) -> None:
            by.step()
            fz = HttpCase(c, codes, kinds, by)
            for a in actions:
                if a[0] == "chunk":
                    fz.chunk(*a[1:])
                elif a[0] == "burst":
                    fz.burst(a[1])
                elif a[0] in ("ack", "resume"):
                    fz.ack_or_resume(*a)
                elif a[0] == "open":
                    fz.open(*a[1:])
                else:
                    fz.close(*a[1:])
            fz.cleanup()

        run()
        by.finish()
        health = c.get("/healthz")
        assert health.status_code == 200 and health.json()["errors"] == 0, health.text
        assert health.json()["sessions"] == 0, "a session the fuzz opened was left behind"
    missing = HTTP_REQUIRED - set(codes)
    assert not missing, f"the fuzz never produced {missing}: {dict(codes)}"
    assert min(kinds[k] for k in ("chunk", "ack", "resume", "open", "close")) > 0, kinds



# -- regressions the fuzz found ----------------------------------------------------------------
@pytest.mark.parametrize("body", [b'{"model": "\xff"}', b"[" * 5000 + b"]" * 5000,
                                  b'{"budget_ms": 1' + b"0" * 5000 + b"}"],
                         ids=["bad_utf8", "deep", "bigint"])
def test_http_body_that_json_cannot_read_gets_the_error_shape(body):
    with make_client(**CONFIG) as c:
        r = c.post("/v1/sessions", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert r.json().get("op") == "error" and r.json().get("code") == "bad_request", r.text
