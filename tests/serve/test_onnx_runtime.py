"""``--runtime onnx``: stacked onnxruntime calls keep every session exact and apart."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamwise.serve.errors import ServeError
from streamwise.serve.onnx_runtime import OnnxBatcher, OnnxServed
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import MemoryStore
from tests.serve.conftest import MODELS, onnx_cache_dir, served_models


def offline(name: str, x: np.ndarray) -> np.ndarray:
    if x.shape[-1] == 0:  # nothing pushed: nothing out (the offline conv needs >= 1 frame)
        return np.zeros((1, 0), np.float32)
    with torch.inference_mode():
        return MODELS[name](torch.from_numpy(x)[None])[0].numpy()


def lockstep(name: str, pushes: list[list[int]], seed: int = 0) -> list[float]:
    """Sessions step together (one ``OnnxBatcher.step`` per round; a session with no push
    left sits out); returns each session's max error against the offline forward."""
    served = served_models("onnx")[name]
    assert isinstance(served, OnnxServed)
    batcher = OnnxBatcher(served)
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((1, sum(p))).astype(np.float32) * 0.3 for p in pushes]
    streams = [served.stream(1) for _ in pushes]
    outs: list[list[torch.Tensor]] = [[] for _ in pushes]
    widest = 0
    for r in range(max(len(p) for p in pushes)):
        live = [i for i, p in enumerate(pushes) if r < len(p)]
        chunks = []
        for i in live:
            a = sum(pushes[i][:r])
            chunks.append(torch.from_numpy(xs[i][None, :, a : a + pushes[i][r]]))
        ys = batcher.step([streams[i] for i in live], chunks)
        widest = max([widest, *batcher.last_calls])
        for i, y in zip(live, ys):
            outs[i].append(y)
    errors = []
    for s, o, x in zip(streams, outs, xs):
        got = torch.cat([*o, s.close()], -1)[0].numpy()
        ref = offline(name, x)
        assert got.shape == ref.shape
        errors.append(float(np.abs(got - ref).max(initial=0.0)))
    if len(pushes) > 1 and all(sum(p) >= 4 * served.onnx.chunk for p in pushes):
        assert widest > 1, "sessions in the same phase share onnxruntime calls"
    return errors


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pushes=st.lists(st.lists(st.sampled_from([0, 1, 5, 31, 32, 33, 77, 160]), min_size=1,
                                max_size=8), min_size=1, max_size=5), seed=st.integers(0, 99))
def test_stacked_sessions_equal_offline_tiny_vad(pushes, seed):
    assert max(lockstep("tiny_vad", pushes, seed)) <= 1e-5


def test_stacked_sessions_equal_offline_denoiser():
    # lookahead: each stream's length is a multiple of the export chunk (16)
    errors = lockstep("denoiser", [[160] * 6, [16, 144, 320, 80, 400], [1000, 120], [480]])
    assert max(errors) <= 1e-5


def test_lookahead_stream_end_refused_until_exact():
    service = Service(served_models("onnx"), MemoryStore(), ServeConfig())

    async def go() -> tuple[np.ndarray, np.ndarray]:
        sess, _ = service.open("denoiser", "c")
        x = np.random.default_rng(5).standard_normal((1, 480)).astype(np.float32)
        _, y0 = await service.push(sess, 0, x[:, :470])
        with pytest.raises(ServeError, match="multiple of 16") as e:
            await service.close(sess)
        assert e.value.code == "bad_request"
        _, y1 = await service.push(sess, 1, x[:, 470:])  # the session goes on after a refusal
        _, tail = await service.close(sess)
        return torch.cat([y0, y1, tail], -1)[0].numpy(), offline("denoiser", x)

    try:
        got, ref = asyncio.run(go())
    finally:
        service.shutdown()
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_cli_refuses_bad_runtime_arguments():
    for args, needle in [(["--onnx", "vad=m.onnx"], "needs --runtime onnx"),
                         (["--runtime", "onnx", "--onnx", "vad=model.bin"], "NAME=PATH.onnx"),
                         (["--runtime", "onnx", "--ray"], "torch runtime only")]:
        r = subprocess.run([sys.executable, "-m", "streamwise.cli", "serve", "--store", "memory",
                            *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and needle in r.stderr, (args, r.stderr[-500:])


def test_a_given_onnx_file_is_served_without_its_torch_model():
    from streamwise.serve.run import runtime_models

    path = next(onnx_cache_dir().glob("tiny_vad-*/tiny_vad.onnx"))
    models = runtime_models([], "onnx", onnx_files=[f"vad={path}"])
    assert list(models) == ["vad"] and models["vad"].source is None
    service = Service(models, MemoryStore(), ServeConfig())
    try:
        info = service.model_info("vad")
        assert info["runtime"] == "onnx" and info["chunk"] == 32 and info["period"] == 32
    finally:
        service.shutdown()
