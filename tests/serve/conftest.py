"""Fixtures: an in-process app (TestClient) and real server processes on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from filelock import FileLock

from streamwise.serve.app import create_app
from streamwise.serve.run import demo_models
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import MemoryStore

MODELS = demo_models(asr=False)  # the recogniser has its own tests (test_asr_serve.py)
RUNTIMES = ("torch", "onnx")
#: one export of the demo models per test session (``--runtime onnx`` servers reuse the cache)
_CACHE_ENV = os.environ.get("STREAMWISE_TEST_ONNX_CACHE")  # a kept folder saves the export
ONNX_CACHE = Path(_CACHE_ENV) if _CACHE_ENV else None
_ONNX: dict[str, object] = {}


def onnx_cache_dir() -> Path:
    """The folder the demo models' ONNX exports live in (exported on first use)."""
    if "dir" not in _ONNX:
        import tempfile

        from streamwise.serve.onnx_runtime import onnx_models

        run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same for every xdist worker
        if ONNX_CACHE is not None:
            folder = ONNX_CACHE
        elif run:  # one export for all workers of this run: the first exports, the rest wait
            folder = Path(tempfile.gettempdir()) / f"streamwise-serve-onnx-{run}"
        else:
            folder = Path(tempfile.mkdtemp(prefix="streamwise-serve-onnx-"))
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / ".export.lock")):
            _ONNX["models"] = onnx_models(MODELS, folder)
        _ONNX["dir"] = folder
    return Path(str(_ONNX["dir"]))


def served_models(runtime: str) -> dict:
    """The demo models for ``runtime`` (torch modules, or their ONNX exports)."""
    if runtime == "torch":
        return MODELS
    onnx_cache_dir()
    return dict(_ONNX["models"])  # type: ignore[call-overload]


def serve_args(runtime: str) -> list[str]:
    """``streamwise serve`` arguments that select ``runtime`` (the session's export cache)."""
    if runtime == "torch":
        return []
    return ["--runtime", "onnx", "--onnx-cache", str(onnx_cache_dir())]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_client(runtime: str = "torch", **cfg: object) -> TestClient:
    service = Service(served_models(runtime), MemoryStore(),
                      ServeConfig(**cfg))  # type: ignore[arg-type]
    return TestClient(create_app(service, reap_every_s=0.05), client=("127.0.0.1", 5000))


@pytest.fixture
def client(runtime: str) -> Iterator[TestClient]:
    with make_client(runtime) as c:
        yield c


class ServerProcess:
    """``streamwise serve`` in a child process; ``kill`` sends SIGKILL (no clean shutdown)."""

    def __init__(self, store: str, port: int | None = None, extra: list[str] | None = None,
                 log: Path | None = None) -> None:
        self.store, self.port = store, port or free_port()
        self.extra = extra or []
        self.log = log  # stdout and stderr (uvicorn's access log is stdout) go here if set
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "streamwise.cli", "serve", "--port", str(self.port),
               "--store", self.store, *self.extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.log is not None:
            with open(self.log, "ab") as f:
                self.proc = subprocess.Popen(cmd, stdout=f, stderr=f, env=env)
        else:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = (self.log.read_bytes() if self.log else self.proc.stderr.read())  # type: ignore[union-attr]
                raise RuntimeError(f"server exited: {out.decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start within 60 s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisProcess:
    """A redis-server on 127.0.0.1 that the test stops and starts again (same port and data)."""

    def __init__(self, folder: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run "
                        "installs it)")
        self.exe, self.folder, self.port = exe, folder, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [self.exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL)
        r = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(200):
            try:
                r.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProcess]:
    r = RedisProcess(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def redis_url(redis_proc: RedisProcess) -> str:
    """A redis-server on 127.0.0.1 for this test, stopped by its pid."""
    return redis_proc.url
