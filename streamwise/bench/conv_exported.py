"""The exported and buffered rows of ``streamwise bench conv``.

- ``onnx`` / ``executorch``: the model exported with ``streamwise.export`` once per chunk size,
  outside the timed rounds, and driven by ``runtime.OnnxStream``.  A chunk that is not a multiple
  of the model's period (2 samples for a period of 16) cannot be exported; its pushes go through
  the stream exported at the smallest valid chunk, which buffers them (``export_chunk`` in the
  row says which).  A refused export is a skipped row with the refusal's reason.
- ``cached_conv``: cached_conv only takes multiples of the total stride; for other chunks the
  pushes are buffered the same way (``Buffered``), so both sides pay the same buffering.
- ``cached_conv_torchscript``: cached_conv scripted with ``torch.jit.script`` where it scripts.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule

RUNTIMES = ("onnx", "executorch")
Push = Callable[[Tensor], Tensor]


def export_chunk(period: int, chunk: int) -> int:
    """The smallest exportable chunk (a multiple of ``period``) that ``chunk`` pushes fill."""
    return max(period, -(-chunk // period) * period)


class Buffered:
    """Accumulate pushes and hand ``inner`` only whole multiples of ``multiple`` frames."""

    def __init__(self, inner: Push, multiple: int) -> None:
        self.inner, self.multiple = inner, multiple
        self.pending: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        x = x if self.pending is None else torch.cat([self.pending, x], -1)
        n = x.shape[-1] // self.multiple * self.multiple
        self.pending = x[..., n:]
        if n == 0:
            return x.new_empty(x.shape[0], 1, 0)
        return self.inner(x[..., :n])


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


class ExportedRows:
    """Exports made once per (runtime, export chunk); ``maker`` gives a fresh stream's push."""

    def __init__(self, model: StreamingModule, chunks: tuple[int, ...], threads: int,
                 runtimes: tuple[str, ...] = RUNTIMES, progress: bool = True) -> None:
        self.model, self.threads = model, threads
        self.dir = Path(tempfile.mkdtemp(prefix="bench-conv-"))
        self.models: dict[tuple[str, int], Any] = {}
        self.refused: dict[tuple[str, int], str] = {}
        self.export_s: dict[str, float] = {}
        for runtime in runtimes:
            for ec in sorted({export_chunk(model.period, c) for c in chunks}):
                t0 = time.perf_counter()
                try:
                    self.models[(runtime, ec)] = self._export(runtime, ec)
                except Exception as e:  # noqa: BLE001 - any refusal becomes a skipped row
                    self.refused[(runtime, ec)] = _first_line(e)
                self.export_s[f"{runtime}@{ec}"] = time.perf_counter() - t0
                if progress:
                    print(f"export {runtime} chunk {ec}: {self.export_s[f'{runtime}@{ec}']:.0f}"
                          f" s{' (refused)' if (runtime, ec) in self.refused else ''}")

    def _export(self, runtime: str, chunk: int) -> Any:
        if runtime == "onnx":
            from streamwise.export import onnx
            from streamwise.runtime.onnx_stream import OnnxModel

            path = self.dir / f"m{chunk}.onnx"
            onnx(self.model, path, chunk)
            return OnnxModel(path, threads=self.threads)
        if runtime == "executorch":
            # xnnpack only: the portable backend aborts the process in this ExecuTorch build
            # (a C++ assert on a batch-1 tensor's strides), which a bench cannot catch
            from streamwise.export.executorch_file import executorch
            from streamwise.runtime.executorch_model import ExecutorchModel

            path = self.dir / f"m{chunk}.pte"
            executorch(self.model, path, chunk, backend="xnnpack")
            return ExecutorchModel(path, threads=self.threads)
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")

    def status(self, runtime: str, chunk: int) -> tuple[int, str | None]:
        """(export chunk, refusal reason or None) for pushes of ``chunk`` samples."""
        ec = export_chunk(self.model.period, chunk)
        return ec, self.refused.get((runtime, ec))

    def maker(self, runtime: str, chunk: int) -> Callable[[], Push] | None:
        ec, why = self.status(runtime, chunk)
        if why is not None or (runtime, ec) not in self.models:
            return None
        from streamwise.runtime.onnx_stream import OnnxStream

        m = self.models[(runtime, ec)]
        return lambda: OnnxStream(m).push


def torchscript_cached_conv(cc: nn.Module) -> tuple[nn.Module | None, str | None]:
    """cached_conv scripted, or None and why it does not script."""
    try:
        return torch.jit.script(cc), None
    except Exception as e:  # noqa: BLE001 - a module that does not script is a skipped row
        return None, _first_line(e).replace("\n", " ")


TARGETS = {1: ("cached_conv", 5.0), 2: ("cached_conv", 5.0), 16: ("cached_conv", 5.0),
           160: ("cached_conv", 2.0), 1600: ("offline", 1.2)}
STREAMWISE = ("streamwise", "onnx", "executorch")


def targets(rows: list[dict[str, Any]], offline_sps: float) -> dict[str, dict[str, Any]]:
    """Per chunk: the fastest streamwise way against the requirement's target."""
    by = {(r["method"], r["chunk"]): r for r in rows if r.get("samples")}
    out: dict[str, dict[str, Any]] = {}
    for chunk, (other, need) in TARGETS.items():
        ours = [(by[(m, chunk)]["throughput_sps"], m) for m in STREAMWISE if (m, chunk) in by]
        if not ours:
            continue
        sps, best = max(ours)
        if other == "offline":
            got = offline_sps / sps  # time of streaming over time of offline
            out[str(chunk)] = {"best": best, "time_over_offline": got, "target": f"<= {need}",
                               "met": got <= need}
        elif (other, chunk) in by:
            got = sps / by[(other, chunk)]["throughput_sps"]
            out[str(chunk)] = {"best": best, "speed_over_cached_conv": got,
                               "target": f">= {need}", "met": got >= need}
    return out
