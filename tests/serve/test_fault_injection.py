"""SIGKILL the server at random moments while several clients send, read, ack and resume.

Every stream must end exact against the offline ``forward``: each output answered once,
re-delivered only below the acknowledgement, never after it, none lost; on SQLite and on Redis,
with write-through checkpoints and with sparse ones (the server loses work and clients re-send).
"""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from streamwise.bench.faults import check_exact, run_with_kills
from tests.serve.conftest import ServerProcess
from tests.serve.test_durability import offline

CLIENTS, CHUNKS, CHUNK = 4, 200, 320  # 4 streams of 4 s, 20 ms chunks


def _inputs(seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(CLIENTS):
        x = rng.standard_normal((1, CHUNK * CHUNKS)).astype(np.float32) * 0.3
        out.append([x[:, a : a + CHUNK] for a in range(0, x.shape[1], CHUNK)])
    return out


def _kill_times(seed: int) -> list[float]:
    """Three kills: one at a random point of the stream, one soon after (clients are still
    resuming or catching up), one later."""
    r = random.Random(seed)
    first = r.uniform(0.3, 2.0)
    return [first, first + r.uniform(0.05, 0.6), r.uniform(2.5, 3.8)]


def _run(server: ServerProcess, seed: int) -> None:
    inputs = _inputs(seed)
    run = asyncio.run(run_with_kills(server, server.url.replace("http", "ws"), "tiny_vad",
                                     inputs, _kill_times(seed), ack_every=5, give_up_s=90))
    t = run.totals()
    assert t["errors"] == 0, t
    assert t["kills"] >= 2, t  # the kills landed while streams were live
    assert t["duplicates"] == 0 and t["mismatched"] == 0, t
    assert t["lost"] == 0 and t["answered"] == CLIENTS * CHUNKS, t
    assert t["resumes"] >= CLIENTS, t  # every stream came back at least once
    assert check_exact(run, inputs, lambda x: offline("tiny_vad", x)) == 0, t


@pytest.mark.parametrize("checkpoint_every,seed", [(1, 11), (4, 12)])
def test_random_sigkills_sqlite(tmp_path, checkpoint_every, seed):
    server = ServerProcess(f"sqlite:{tmp_path / 's.db'}",
                           extra=["--checkpoint-every", str(checkpoint_every)]).start()
    try:
        _run(server, seed)
    finally:
        server.stop()


@pytest.mark.parametrize("checkpoint_every,seed", [(1, 21), (4, 22)])
def test_random_sigkills_redis(redis_url, checkpoint_every, seed):
    server = ServerProcess(redis_url, extra=["--checkpoint-every", str(checkpoint_every)]).start()
    try:
        _run(server, seed)
    finally:
        server.stop()
