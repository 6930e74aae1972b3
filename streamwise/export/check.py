"""Run exported files against the model they came from, before anyone relies on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from streamwise.export.program import NotExportableError, Program

#: float32 exports must match the offline forward to this fraction of the output's scale
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


class ExportMismatchError(NotExportableError):
    """An exported file gives other outputs than the model's offline forward."""


def reference(program: Program, x: Tensor) -> Tensor:
    """The offline forward of ``x`` (what every export must reproduce)."""
    with torch.inference_mode():
        return program.model(x)


def relative_error(got: np.ndarray, want: Tensor) -> float:
    """Max abs error over the output's scale (its max abs, at least 1e-12)."""
    w = want.detach().cpu().double().numpy()
    if got.shape != w.shape:
        return float("inf")
    return float(np.abs(got - w).max(initial=0.0) / max(np.abs(w).max(initial=0.0), 1e-12))


def check_files(program: Program, files: dict[str, Path], ex: Tensor, *, batch: int = 2,
                chunks: int = 3, seed: int = 0) -> float:
    """Stream ``prologue + chunks*chunk`` random frames through the files in irregular pushes and
    compare with the offline forward; raise ``ExportMismatchError`` past the tolerance."""
    from streamwise.runtime.onnx_stream import OnnxStream

    g = torch.Generator().manual_seed(seed)
    axis = program.time_axis % ex.dim()
    length = program.prologue + chunks * program.chunk
    shape = list(ex.shape)
    shape[0], shape[axis] = batch, length
    x = torch.randn(shape, generator=g, dtype=ex.dtype)
    want = reference(program, x)
    try:
        s = OnnxStream(files["step"], batch)
    except Exception as e:  # noqa: BLE001 - onnxruntime refuses a graph it has no kernel for
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NotExportableError(
            f"onnxruntime cannot run the exported {type(program.model).__name__} in "
            f"{str(program.dtype).replace('torch.', '')}: {first}"
            + (" (its CPU kernels for Conv are float32 only: export in float32)"
               if program.dtype == torch.float64 else "")) from e
    rng = np.random.default_rng(seed)
    ys, t = [], 0
    while t < length:
        n = min(int(rng.integers(0, 2 * program.chunk + 2)), length - t)
        ys.append(s.push(x.narrow(axis, t, n).numpy()))
        t += n
    ys.append(s.close())
    out_axis = program.out_time_axis % want.dim()
    got = np.concatenate(ys, out_axis)
    err = relative_error(got, want)
    if not err <= TOLERANCE.get(program.dtype, 1e-5):
        what = (f"shape {list(got.shape)} vs {list(want.shape)}" if got.shape != want.shape
                else f"max error {err:.3g} of the output's scale")
        raise ExportMismatchError(
            f"the exported files of {type(program.model).__name__} do not reproduce its offline "
            f"forward ({what}, over {length} frames in irregular pushes): some part of its step "
            "reads a value the export fixed (a clock, a position) or branches on the data")
    return err
