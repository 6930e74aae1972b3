"""Models exported once per test session, and the check every export test makes: the ONNX
files, driven by ``OnnxStream`` over random chunkings, reproduce the torch offline forward."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from streamwise.core.protocol import StreamingModule

pytest.importorskip("onnxruntime", reason="the export extra (pip install -e .[export]) is absent")

from streamwise.export import Contract, onnx  # noqa: E402
from streamwise.runtime import OnnxModel, OnnxStream  # noqa: E402

_DIR = Path(tempfile.mkdtemp(prefix="streamwise-export-tests-"))


@dataclass
class Exported:
    model: StreamingModule
    contract: Contract
    runtime: OnnxModel
    example: Tensor
    path: Path

    def length(self, chunks: int) -> int:
        """A stream length the export is exact for: the prologue plus ``chunks`` chunks."""
        return self.contract.prologue + chunks * self.contract.chunk

    def input(self, batch: int, length: int, seed: int = 0) -> Tensor:
        shape = list(self.example.shape)
        axis = self.model.time_axis % len(shape)
        shape[0], shape[axis] = batch, length
        g = torch.Generator().manual_seed(seed)
        return torch.randn(shape, generator=g, dtype=self.example.dtype)


_CACHE: dict[str, Exported] = {}


def exported(name: str, build: Callable[[], StreamingModule], chunk: int,
             example: Tensor) -> Exported:
    """``build()`` exported with ``chunk`` (once per session and name)."""
    if name not in _CACHE:
        torch.manual_seed(0)
        model = build().eval()
        path = _DIR / f"{name}.onnx"
        contract = onnx(model, path, chunk=chunk, example=example)
        _CACHE[name] = Exported(model, contract, OnnxModel(path), example, path)
    return _CACHE[name]


def assert_onnx_streams_like_offline(e: Exported, x: Tensor, sizes: list[int],
                                     rtol: float | None = None) -> np.ndarray:
    """Push ``x`` in ``sizes`` chunks through an ``OnnxStream`` and compare with ``model(x)``."""
    with torch.inference_mode():
        ref = e.model(x)
    s = OnnxStream(e.runtime, x.shape[0])
    axis = e.model.time_axis % x.dim()
    ys, pos = [], 0
    for n in sizes:
        ys.append(s.push(x.narrow(axis, pos, n).numpy()))
        pos += n
    ys.append(s.close())
    y = np.concatenate(ys, e.model.out_time_axis % ref.dim())
    assert y.shape == tuple(ref.shape), f"exported {y.shape} vs offline {tuple(ref.shape)}"
    want = ref.double().numpy()
    tol = rtol if rtol is not None else (1e-10 if x.dtype == torch.float64 else 1e-5)
    scale = max(float(np.abs(want).max(initial=0.0)), 1.0)
    err = float(np.abs(y - want).max(initial=0.0))
    assert err <= tol * scale, f"max abs error {err:.3e} > {tol:g} x scale {scale:.3g}"
    return y
