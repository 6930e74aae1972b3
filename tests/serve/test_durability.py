"""Kill the server with SIGKILL mid-stream, restart it on the same store, resume: no gap, no dup."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from streamwise.serve.client import ServerError, StreamClient
from tests.serve.conftest import MODELS, ServerProcess, serve_args


def offline(name: str, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return MODELS[name](torch.from_numpy(x)[None])[0].numpy()


async def _stream_kill_resume(server: ServerProcess, model: str, chunk: int) -> None:
    x = np.random.default_rng(3).standard_normal((1, chunk * 40)).astype(np.float32) * 0.3
    chunks = [x[:, a : a + chunk] for a in range(0, x.shape[1], chunk)]
    c = StreamClient(server.url.replace("http", "ws"))
    await c.open(model)
    consumed: dict[int, np.ndarray] = {}
    for i in range(25):  # 25 chunks out; the client consumes and acknowledges only 15 outputs
        await c.send(chunks[i])
        seq, y = await c.recv()
        assert seq == i
        if i < 15:
            consumed[seq] = y
            await c.ack(seq)
    await asyncio.sleep(0.2)  # let the ack land
    server.kill()
    server.start()  # same port, same store
    outs = await c.resume()  # pending outputs after the ack, then re-sent chunks' outputs
    assert [s for s, _ in outs] == list(range(15, 25)), "exactly the unacknowledged outputs"
    for s, y in outs:
        consumed[s] = y
    for i in range(25, len(chunks)):
        await c.send(chunks[i])
        seq, y = await c.recv()
        assert seq == i and seq not in consumed
        consumed[seq] = y
    tail_seq, tail = await c.close()
    assert tail_seq == len(chunks)
    assert sorted(consumed) == list(range(len(chunks)))
    got = np.concatenate([consumed[i] for i in range(len(chunks))] + [tail], -1)
    np.testing.assert_allclose(got, offline(model, x), atol=1e-5)
    with pytest.raises(ServerError, match="unknown_session"):
        await c.resume()  # closed sessions are gone from the store too


async def _lost_replies(server: ServerProcess, acked: int) -> None:
    """With checkpoints every 4 chunks, a crash loses work; the client re-sends it."""
    x = np.random.default_rng(4).standard_normal((1, 320 * 30)).astype(np.float32)
    chunks = [x[:, a : a + 320] for a in range(0, x.shape[1], 320)]
    c = StreamClient(server.url.replace("http", "ws"))
    await c.open("tiny_vad")
    got: dict[int, np.ndarray] = {}
    for i in range(10):  # durable up to seq 7 (checkpoint after 4 and 8 chunks)
        await c.send(chunks[i])
        s, y = await c.recv()
        got[s] = y
    assert sorted(c.unsent) == [8, 9]  # not yet durable: kept for re-sending
    await c.ack(acked)
    await asyncio.sleep(0.1)
    server.kill()
    server.start()
    outs = await c.resume()
    # recomputed from the re-sent chunks, identical; those already acknowledged are not repeated
    assert [s for s, _ in outs] == list(range(acked + 1, 10))
    for s, y in outs:
        np.testing.assert_array_equal(y, got[s])
    await c.ack(9)
    for i in range(10, 30):
        await c.send(chunks[i])
        s, y = await c.recv()
        got[s] = y
    _, tail = await c.close()
    full = np.concatenate([got[i] for i in range(30)] + [tail], -1)
    np.testing.assert_allclose(full, offline("tiny_vad", x), atol=1e-5)


@pytest.mark.parametrize("model,chunk", [("tiny_vad", 320), ("denoiser", 320)])
def test_sigkill_and_resume_sqlite(tmp_path, model, chunk, runtime):
    server = ServerProcess(f"sqlite:{tmp_path / 'sessions.db'}", extra=serve_args(runtime)).start()
    try:
        asyncio.run(_stream_kill_resume(server, model, chunk))
    finally:
        server.stop()


def test_sigkill_and_resume_redis(redis_url, runtime):
    server = ServerProcess(redis_url, extra=serve_args(runtime)).start()
    try:
        asyncio.run(_stream_kill_resume(server, "tiny_vad", 320))
    finally:
        server.stop()


@pytest.mark.parametrize("acked", [7, 8, 9])
def test_sparse_checkpoints_resend(tmp_path, acked, runtime):
    server = ServerProcess(f"sqlite:{tmp_path / 's.db'}",
                           extra=["--checkpoint-every", "4", *serve_args(runtime)]).start()
    try:
        asyncio.run(_lost_replies(server, acked))
    finally:
        server.stop()
