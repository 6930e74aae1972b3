"""The recogniser served: concurrent sessions, opened at different moments and batched at
several batch sizes, each get the transcript they get alone (= the offline decode); ``peek``
shows a tentative tail without changing the session."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from streamwise.assets import words_clip
from streamwise.serve import wire
from streamwise.serve.app import create_app
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import MemoryStore
from streamwise.speech.recognizer import GreedyCTC, load_recognizer, transcribe_offline
from streamwise.speech.streams import timed_streams

CHUNK = 2560  # 160 ms: the served chunk


@pytest.fixture(scope="module")
def model():
    return load_recognizer(chunk=4)


@pytest.fixture(scope="module")
def audios():
    clip = words_clip()[0].numpy()
    # long enough to share steps at different clocks, which needs warm-up (8.6 s: the receptive
    # field of 4 blocks of 9 chunks, the lookahead and a period)
    long = timed_streams(3, "test", seed=11, words=(14, 16))
    return [np.tile(clip, 2)] + [s.audio for s in long]


def _recv(ws):
    msg = ws.receive()
    if msg.get("text") is not None:
        return json.loads(msg["text"])
    return wire.decode(msg["bytes"])


def _words(frames: np.ndarray) -> list[tuple[str, int]]:
    return [(w.text, w.frame) for w in GreedyCTC().feed(frames.argmax(0).tolist(), 0.0)]


@pytest.mark.parametrize("max_batch", [1, 2, 4])
def test_batched_sessions_transcribe_as_one_at_a_time(model, audios, max_batch):
    service = Service({"asr": model}, MemoryStore(), ServeConfig(max_batch=max_batch))
    sizes: list[int] = []
    on_tick = service.scheduler.on_tick
    service.scheduler.on_tick = lambda st: (sizes.extend(st.batch_sizes), on_tick(st))[1]
    with TestClient(create_app(service)) as c:
        sockets = [c.websocket_connect("/v1/stream").__enter__() for _ in audios]
        for ws in sockets:
            ws.send_text(json.dumps({"op": "open", "model": "asr"}))
            assert _recv(ws)["op"] == "opened"
        outs: list[list[np.ndarray]] = [[] for _ in audios]
        start = [3 * k for k in range(len(audios))]  # sessions start 480 ms apart
        ticks = max(st + -(-len(x) // CHUNK) for st, x in zip(start, audios))
        for t in range(ticks):  # every live session sends its next chunk, so the chunks meet
            live = [k for k, x in enumerate(audios) if 0 <= (t - start[k]) * CHUNK < len(x)]
            for k in live:
                i = t - start[k]
                sockets[k].send_bytes(wire.encode(i, audios[k][None, i * CHUNK:(i + 1) * CHUNK],
                                                  ack=i - 1))
            for k in live:
                seq, _, y = _recv(sockets[k])
                assert seq == t - start[k]
                outs[k].append(y)
                if (seq + 1) * CHUNK >= len(audios[k]):  # a stream that ended closes alone
                    sockets[k].send_text(json.dumps({"op": "close"}))
                    assert _recv(sockets[k])["op"] == "closed"
                    outs[k].append(_recv(sockets[k])[2])
        for ws in sockets:
            ws.__exit__(None, None, None)
    for k, x in enumerate(audios):
        got = _words(np.concatenate(outs[k], -1))
        want = transcribe_offline(model, torch.from_numpy(x))
        assert got == [(w.text, w.frame) for w in want], k
    # sessions at different clocks (opened apart) really shared steps
    assert max(sizes) == min(max_batch, len(audios))
    if max_batch == 1:
        assert set(sizes) == {1}


def test_peek_shows_the_partial_chunk_and_changes_nothing(model, audios):
    service = Service({"asr": model}, MemoryStore(), ServeConfig())
    x = audios[0]
    half = CHUNK // 2
    with TestClient(create_app(service)) as c, c.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps({"op": "open", "model": "asr"}))
        opened = _recv(ws)
        assert opened["model"]["labels"][0] == "" and "front" in opened["model"]["labels"]
        outs, peeked = [], 0
        for i, a in enumerate(range(0, len(x), half)):
            ws.send_bytes(wire.encode(i, x[None, a:a + half], ack=i - 1))
            outs.append(_recv(ws)[2])
            ws.send_text(json.dumps({"op": "peek"}))
            p = _recv(ws)
            assert p["op"] == "peeked" and p["after_seq"] == i
            peeked += np.asarray(p["data"]).shape[-1]
        ws.send_text(json.dumps({"op": "close"}))
        assert _recv(ws)["op"] == "closed"
        outs.append(_recv(ws)[2])
    assert peeked > 0  # half chunks: the partial chunk always had frames to show
    with torch.inference_mode():
        ref = model(torch.from_numpy(x).reshape(1, 1, -1))[0].numpy()
    np.testing.assert_allclose(np.concatenate(outs, -1), ref, atol=1e-4)
