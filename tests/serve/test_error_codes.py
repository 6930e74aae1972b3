"""The error contract as documented: every code in docs/serve-protocol.md's table exists with its
status and names a test that produces it; ``internal`` (a model that raises) loses nothing; and
tokens stay secret (never logged, never read from a URL, compared in constant time)."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path

import httpx
import numpy as np

from streamwise.serve.client import StreamClient
from streamwise.serve.errors import STATUS
from streamwise.serve.sessions import Session, hash_token, new_token
from tests.serve.conftest import ServerProcess, make_client
from tests.serve.test_durability import offline

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(\w+)` \| (\d{3}) \| .+ \| `(test_\w+\.py)::(test_\w+)` \|$")


def _doc_rows() -> list[tuple[str, int, str, str]]:
    text = (ROOT / "docs" / "serve-protocol.md").read_text()
    return [(m[1], int(m[2]), m[3], m[4]) for line in text.splitlines()
            if (m := ROW.match(line))]


def test_every_documented_code_exists_and_names_a_test_that_produces_it():
    rows = _doc_rows()
    assert sorted(c for c, *_ in rows) == sorted(STATUS), "the doc's table lists every code once"
    for code, status, file, test in rows:
        assert STATUS[code] == status, (code, status, STATUS[code])
        src = (ROOT / "tests" / "serve" / file).read_text()
        tests = {n.name for n in ast.parse(src).body if isinstance(n, ast.FunctionDef)}
        assert test in tests, f"{code}: {file} has no {test}"
        assert f'"{code}"' in src or f"'{code}'" in src, f"{file} never checks for {code}"


def test_a_model_that_raises_gets_internal_and_keeps_its_state():
    x = np.random.default_rng(5).standard_normal((1, 320 * 6)).astype(np.float32)
    with make_client() as c:
        service = c.app.state.service  # type: ignore[attr-defined]
        batcher = service.scheduler.batchers["tiny_vad"]
        step = batcher.step

        def poisoned(streams, chunks):  # a model that fails on one input (a finite one)
            if any(float(ch.reshape(-1)[0]) == 7.0 for ch in chunks):
                raise RuntimeError("poison")
            return step(streams, chunks)

        batcher.step = poisoned
        r = c.post("/v1/sessions", json={"model": "tiny_vad"}).json()
        sid, h = r["session"], {"Authorization": f"Bearer {r['token']}"}
        outs = []
        for i in range(6):
            chunk = x[:, i * 320 : (i + 1) * 320]
            if i == 3:
                bad = chunk.copy()
                bad[0, 0] = 7.0
                err = c.post(f"/v1/sessions/{sid}/chunks", json={"seq": 3, "data": bad.tolist()},
                             headers=h)
                assert err.status_code == 500 and err.json()["code"] == "internal", err.text
                assert "failed on this chunk" in err.json()["message"]
            ok = c.post(f"/v1/sessions/{sid}/chunks", json={"seq": i, "data": chunk.tolist()},
                        headers=h)
            assert ok.status_code == 200, ok.text  # the same seq again: the state was untouched
            outs.append(np.asarray(ok.json()["data"], np.float32))
        tail = np.asarray(c.post(f"/v1/sessions/{sid}/close", headers=h).json()["data"],
                          np.float32)
        assert c.get("/healthz").status_code == 200
    np.testing.assert_allclose(np.concatenate(outs + [tail], -1), offline("tiny_vad", x),
                               atol=1e-5)


def test_tokens_are_never_read_from_a_url():
    with make_client() as c:
        r = c.post("/v1/sessions", json={"model": "tiny_vad"}).json()
        sid, tok = r["session"], r["token"]
        for q in (f"?token={tok}", f"?authorization=Bearer%20{tok}", f"?access_token={tok}"):
            got = c.post(f"/v1/sessions/{sid}/resume{q}", json={"ack": -1})
            assert got.status_code == 401 and got.json()["code"] == "unauthorized", got.text
        good = c.post(f"/v1/sessions/{sid}/resume", json={"ack": -1},
                      headers={"Authorization": f"Bearer {tok}"})
        assert good.status_code == 200


def test_tokens_are_compared_by_hash_and_only_the_hash_is_kept():
    token, digest = new_token()
    assert token not in digest and digest == hash_token(token)
    sess = Session.__new__(Session)
    sess.token_hash = digest
    assert sess.token_ok(token)
    for wrong in (token[:-1], token + "x", token.upper(), "", None, 123, digest):
        assert not sess.token_ok(wrong)  # type: ignore[arg-type]


async def _open_resume_refuse(server: ServerProcess) -> list[str]:
    url = server.url.replace("http", "ws")
    c = StreamClient(url)
    await c.open("tiny_vad")
    await c.send(np.zeros((1, 320), np.float32))
    await c.recv()
    await c.disconnect()
    await c.resume()  # the token travels in the resume message
    await c.disconnect()
    async with httpx.AsyncClient() as h:
        r = (await h.post(server.url + "/v1/sessions", json={"model": "tiny_vad"})).json()
        for tok in (r["token"], r["token"] + "x"):  # right and wrong, both over HTTP
            await h.post(f"{server.url}/v1/sessions/{r['session']}/resume", json={"ack": -1},
                         headers={"Authorization": f"Bearer {tok}"})
    return [str(c.token), r["token"]]


def test_tokens_never_reach_the_server_log(tmp_path):
    server = ServerProcess(f"sqlite:{tmp_path / 's.db'}", extra=["--log-level", "trace"],
                           log=tmp_path / "server.log").start()
    try:
        tokens = asyncio.run(_open_resume_refuse(server))
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "/v1/sessions" in log, "the access log was on (else this test proves nothing)"
    for tok in tokens:
        assert tok not in log and hash_token(tok) not in log


def test_a_forged_forwarded_for_does_not_escape_the_per_client_limits(tmp_path):
    server = ServerProcess(f"sqlite:{tmp_path / 's.db'}",
                           extra=["--open-burst", "2", "--open-rate", "0.01"]).start()
    try:
        codes = []
        for i in range(3):
            r = httpx.post(server.url + "/v1/sessions", json={"model": "tiny_vad"},
                           headers={"X-Forwarded-For": f"10.0.0.{i}", "Forwarded": f"for=10.1.{i}"})
            codes.append(r.json().get("code", "opened"))
    finally:
        server.stop()
    assert codes == ["opened", "opened", "rate_limited"], codes
