"""The benchmark's server: ``streamwise serve`` in a child process on a free loopback port."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

RATE, CHUNK = 16_000, 320  # 20 ms chunks of 16 kHz audio


class Server:
    """``streamwise serve`` in a child process on a free loopback port.

    ``kill`` sends SIGKILL (no clean shutdown); ``start`` brings a new process up on the same
    port and store (what a supervisor does), as the fault-injection soak needs."""

    def __init__(self, extra: list[str]) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tmp = Path(tempfile.mkdtemp(prefix="streamwise-bench-"))
        db = self.tmp / "sessions.db"  # a real durable store, thrown away afterwards
        # every client is 127.0.0.1 here: the per-client open limits would refuse the load
        self.cmd = [sys.executable, "-m", "streamwise.cli", "serve", "--port", str(self.port),
                    "--store", f"sqlite:{db}", "--max-sessions", "5000", "--open-rate", "1000",
                    "--open-burst", "5000", *extra]
        self.start()

    def start(self) -> None:
        import httpx

        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.ps = psutil.Process(self.proc.pid)
        for _ in range(300):
            if self.proc.poll() is not None:
                raise RuntimeError(f"benchmark server exited with {self.proc.returncode}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("benchmark server did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def rss_mb(self) -> float:
        try:
            return float(self.ps.memory_info().rss / 2**20)
        except psutil.Error:  # between a kill and the restart
            return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
