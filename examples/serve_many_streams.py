"""Serve live streams with cross-session batching (StreamDiffusionV2-style SLO-aware batching).

Starts ``streamwise serve``'s app in this process on a free loopback port (memory store), opens
8 WebSocket sessions on the VAD-sized model, streams the shipped speech recording through each in
20 ms chunks (each client at its own offset), checks every stream against the offline forward,
and reads the server's batch-size histogram: the 8 sessions shared steps.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time

import httpx
import numpy as np
import torch
import uvicorn

from streamwise.assets import speech
from streamwise.serve.app import create_app
from streamwise.serve.client import StreamClient
from streamwise.serve.run import demo_models
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import MemoryStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one_stream(url: str, audio: np.ndarray, offset: int) -> np.ndarray:
    c = StreamClient(url)
    await c.open("tiny_vad")
    x = np.roll(audio, offset, axis=-1)
    outs = []
    for a in range(0, x.shape[-1], 320):
        await c.send(x[:, a : a + 320])
        seq, y = await c.recv()
        await c.ack(seq)
        outs.append(y)
    outs.append((await c.close())[1])
    return np.concatenate(outs, -1)


async def main(url: str, audio: np.ndarray, n: int) -> list[np.ndarray]:
    return list(await asyncio.gather(*(one_stream(url, audio, 1600 * i) for i in range(n))))


if __name__ == "__main__":
    models = demo_models()
    service = Service(models, MemoryStore(), ServeConfig())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port,
                                           log_level="warning", ws="websockets-sansio"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    clip, rate = speech()
    audio = clip[:, : rate * 2].numpy().astype(np.float32)  # 2 s of speech per stream
    n = 8
    t0 = time.perf_counter()
    outs = asyncio.run(main(f"ws://127.0.0.1:{port}", audio, n))
    wall = time.perf_counter() - t0
    worst = 0.0
    for i, y in enumerate(outs):
        x = torch.from_numpy(np.roll(audio, 1600 * i, axis=-1))[None]
        with torch.inference_mode():
            ref = models["tiny_vad"](x)[0].numpy()
        worst = max(worst, float(np.abs(y - ref).max()))
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    count = float(re.search(r"streamwise_batch_size_count (\S+)", metrics).group(1))
    total = float(re.search(r"streamwise_batch_size_sum (\S+)", metrics).group(1))
    server.should_exit = True
    thread.join(10)
    print(f"{n} sessions x {audio.shape[-1] / rate:.1f} s in 20 ms chunks, {wall:.2f} s wall")
    print(f"max |served - offline| over all sessions: {worst:.2e}")
    print(f"batched steps: {int(count)} calls for {int(total)} chunks "
          f"(mean batch {total / count:.1f} sessions)")
