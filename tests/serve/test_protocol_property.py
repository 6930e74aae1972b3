"""Random interleavings of pushes, retries, acks, resumes and bad chunks keep a session exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.conftest import MODELS, RUNTIMES, make_client


@pytest.fixture(scope="module", params=RUNTIMES)
def client(request):
    with make_client(request.param) as c:  # one app for every example
        yield c

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.sampled_from([0, 1, 31, 32, 77, 320])),
        st.tuples(st.just("retry"), st.integers(0, 50)),
        st.tuples(st.just("ack"), st.integers(0, 50)),
        st.tuples(st.just("resume"), st.integers(-1, 50)),
        st.tuples(st.just("bad"), st.sampled_from(["nan", "gap", "channels"])),
    ),
    min_size=1, max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=OPS, seed=st.integers(0, 1000))
def test_session_stays_exact_under_any_interleaving(client, ops, seed):
    rng = np.random.default_rng(seed)
    c = client
    r = c.post("/v1/sessions", json={"model": "tiny_vad"}).json()
    sid, h = r["session"], {"Authorization": f"Bearer {r['token']}"}
    url = f"/v1/sessions/{sid}"
    sent: list[np.ndarray] = []
    got: dict[int, np.ndarray] = {}
    acked = -1
    for op, arg in ops:
        if op == "push":
            x = rng.standard_normal((1, arg)).astype(np.float32)
            resp = c.post(f"{url}/chunks", json={"seq": len(sent), "data": x.tolist()}, headers=h)
            assert resp.status_code == 200, resp.text
            got[len(sent)] = np.asarray(resp.json()["data"], np.float32).reshape(1, -1)
            sent.append(x)
        elif op == "retry" and sent:
            seq = arg % len(sent)
            resp = c.post(f"{url}/chunks", json={"seq": seq, "data": sent[seq].tolist()},
                          headers=h)
            if seq > acked:  # idempotent: the same output again
                np.testing.assert_array_equal(
                    np.asarray(resp.json()["data"], np.float32).reshape(1, -1), got[seq])
            else:
                assert resp.status_code == 409 and resp.json()["code"] == "out_of_order"
        elif op == "ack" and sent:
            seq = arg % len(sent)
            assert c.post(f"{url}/ack", json={"ack": seq}, headers=h).status_code == 200
            acked = max(acked, seq)
        elif op == "resume":
            ack = min(arg, len(sent) - 1)
            res = c.post(f"{url}/resume", json={"ack": ack}, headers=h).json()
            acked = max(acked, ack)
            assert res["next_seq"] == len(sent)
            assert [o["seq"] for o in res["outputs"]] == list(range(acked + 1, len(sent)))
            for o in res["outputs"]:
                np.testing.assert_array_equal(
                    np.asarray(o["data"], np.float32).reshape(1, -1), got[o["seq"]])
        elif op == "bad":
            data = {"nan": "[[NaN, 0.5]]", "gap": "[[0.0, 0.5]]",
                    "channels": "[[0.0, 0.5], [0.0, 0.5]]"}[arg]
            seq = len(sent) + (5 if arg == "gap" else 0)
            body = f'{{"seq": {seq}, "data": {data}}}'  # NaN is not JSON: written by hand
            resp = c.post(f"{url}/chunks", content=body, headers={
                **h, "content-type": "application/json"})
            assert resp.status_code in (400, 409) and resp.json()["code"] in (
                "non_finite", "out_of_order", "bad_shape"), resp.text
    tail = c.post(f"{url}/close", headers=h).json()
    out = np.concatenate([got[i] for i in range(len(sent))]
                         + [np.asarray(tail["data"], np.float32).reshape(1, -1)], -1)
    x = np.concatenate(sent, -1) if sent else np.zeros((1, 0), np.float32)
    if x.shape[-1] == 0:  # nothing pushed: nothing out (the offline conv needs >= 1 frame)
        ref = np.zeros((1, 0), np.float32)
    else:
        with torch.inference_mode():
            ref = MODELS["tiny_vad"](torch.from_numpy(x)[None])[0].numpy()
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-5)
