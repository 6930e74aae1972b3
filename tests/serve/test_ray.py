"""Ray Serve scale-out: a replica dies mid-stream; the client resumes on another from Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.serve.conftest import MODELS, free_port

ray = pytest.importorskip("ray", reason="ray[serve] is not installed (pip install -e '.[dev]')")


def _ray_port() -> int:
    """A GCS port outside Ray's worker range (10002-19999)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
            port = int(s.getsockname()[1])
        if not 10002 <= port <= 19999:
            return port
    raise RuntimeError("no free port outside Ray's worker range")


def _ray_pids(markers: list[str], before: set[int]) -> list[int]:
    """Processes started since ``before`` that belong to our cluster (renamed ones included)."""
    import psutil

    pids = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.info["pid"] in before or not cmd:
            continue
        if cmd[0].startswith("ray::") or any(m in part for part in cmd for m in markers):
            pids.append(p.info["pid"])
    return pids


@pytest.fixture
def ray_cluster():
    exe = shutil.which("ray") or str(Path(os.sys.executable).parent / "ray")
    tmp = tempfile.mkdtemp(prefix="swray", dir="/tmp")  # short: Ray's socket paths are limited
    port = _ray_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    import psutil

    before = set(psutil.pids())
    subprocess.run([exe, "start", "--head", "--node-ip-address=127.0.0.2", f"--port={port}",
                    "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                    f"--temp-dir={tmp}"], check=True, env=env, capture_output=True, timeout=120)
    try:
        ray.init(address=f"127.0.0.2:{port}", logging_level="ERROR")
        yield
    finally:
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            for pid in _ray_pids([tmp, f"127.0.0.2:{port}"], before):  # stop them by pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(tmp, ignore_errors=True)


def test_replica_dies_session_resumes_elsewhere(ray_cluster, redis_url):
    from ray import serve

    from streamwise.serve.client import StreamClient
    from streamwise.serve.ray_app import DEPLOYMENT, deployment
    from streamwise.serve.service import ServeConfig

    http_port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    serve.run(deployment([], redis_url, ServeConfig(), replicas=2), name="streamwise",
              route_prefix="/")
    x = np.random.default_rng(5).standard_normal((1, 320 * 30)).astype(np.float32)
    chunks = [x[:, a : a + 320] for a in range(0, x.shape[1], 320)]

    async def run() -> tuple[str, str, np.ndarray]:
        c = StreamClient(f"ws://127.0.0.1:{http_port}")
        await c.open("tiny_vad")
        first = c.server
        got: dict[int, np.ndarray] = {}
        for i in range(12):
            await c.send(chunks[i])
            s, y = await c.recv()
            got[s] = y
            if i < 8:
                await c.ack(s)
        await asyncio.sleep(0.2)
        actor = ray.get_actor(f"SERVE_REPLICA::streamwise#{DEPLOYMENT}#{first}", namespace="serve")
        ray.kill(actor, no_restart=True)
        deadline = time.monotonic() + 60
        while True:  # the proxy may need a moment to route around the dead replica
            try:
                outs = await c.resume()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        assert [s for s, _ in outs] == [8, 9, 10, 11]
        for s, y in outs:
            np.testing.assert_array_equal(y, got[s])  # the same outputs, recomputed nowhere
        for i in range(12, len(chunks)):
            await c.send(chunks[i])
            s, y = await c.recv()
            assert s == i
            got[s] = y
        _, tail = await c.close()
        full = np.concatenate([got[i] for i in range(len(chunks))] + [tail], -1)
        return first, c.server, full

    first, second, full = asyncio.run(run())
    assert second and second != first
    with torch.inference_mode():
        ref = MODELS["tiny_vad"](torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(full, ref, atol=1e-5)
