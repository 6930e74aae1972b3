"""``ExecutorchModel``: the files of ``streamwise.export.executorch`` behind ``OnnxModel``'s face.

The three ``.pte`` programs are loaded with the ExecuTorch runtime (``executorch.runtime``), and
the contract is read from ``<name>.contract.json``.  It has ``OnnxModel``'s attributes and its
``start``/``step``/``flush`` on numpy arrays, so ``OnnxStream(ExecutorchModel(path), batch)``
streams it (pushes of any size, snapshots, ``stack_states``).  ExecuTorch takes and gives torch
tensors; they wrap the numpy arrays without a copy.  Nothing here imports torch or ExecuTorch
until a model is opened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from streamwise.runtime.contract_file import sibling
from streamwise.runtime.onnx_stream import Arrays, OnnxModel, OnnxStream


def contract_path(path: str | Path) -> Path:
    """``m.pte`` -> ``m.contract.json`` (where an ExecuTorch export keeps its contract)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.contract.json")


def read_pte_contract(path: str | Path) -> dict[str, Any]:
    """The contract next to the step file ``path`` of an ExecuTorch export."""
    path, meta = Path(path), contract_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no exported model at {path}")
    if not meta.exists():
        raise ValueError(f"{path} has no contract next to it ({meta.name}): it was not written "
                         "by streamwise.export.executorch, or the JSON file was not copied")
    return dict(json.loads(meta.read_text()))


def set_threads(threads: int) -> None:
    """Size ExecuTorch's thread pool (XNNPACK's); one process-wide pool, where the build has it."""
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:  # pragma: no cover - a runtime without the pybindings' thread pool
        return
    reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
    count = getattr(portable_lib, "_threadpool_get_thread_count", None)
    if reset is not None and (count is None or count() != threads):
        reset(threads)


class ExecutorchModel(OnnxModel):
    """The three ExecuTorch programs of an export and its contract, shared by its streams.

    ``threads`` sizes the process-wide ExecuTorch thread pool (the last model opened sets it)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:  # noqa: D107
        # not OnnxModel.__init__: same attributes, other files
        self.path = Path(path)
        self.contract = read_pte_contract(self.path)
        c = self.contract
        import torch  # executorch's inputs and outputs are torch tensors
        from executorch.runtime import Runtime

        self._torch = torch
        set_threads(threads)
        runtime = Runtime.get()
        self.methods = {k: runtime.load_program(sibling(self.path, k)).load_method("forward")
                        for k in ("start", "step", "flush")}
        self.sessions = {}  # OnnxModel's onnxruntime sessions: none here
        self.read(c)
        self.max_batch = int(c.get("extra", {}).get("max_batch", 0)) or None

    def _run(self, kind: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
        rows = arrays[0].shape[0] if arrays and arrays[0].ndim else 0
        if self.max_batch is not None and kind != "flush" and rows > self.max_batch:
            raise ValueError(f"this ExecuTorch export takes at most {self.max_batch} rows per "
                             f"call (max_batch), got {rows}: export with a larger max_batch")
        t = self._torch
        # an empty array's numpy strides are 0s, which ExecuTorch refuses: torch's own instead
        ins = tuple(t.from_numpy(np.ascontiguousarray(a)) if a.size else
                    t.empty(a.shape, dtype=getattr(t, a.dtype.name)) for a in arrays)
        return [o.numpy() for o in self.methods[kind].execute(ins)]

    def _state(self, state: Arrays) -> list[np.ndarray]:
        return [state[n] for n in self.names]

    def start(self, x: np.ndarray) -> tuple[np.ndarray, Arrays]:
        y, *new = self._run("start", [x])
        return y, dict(zip(self.names, new))

    def step(self, x: np.ndarray, state: Arrays) -> tuple[np.ndarray, Arrays]:
        y, *new = self._run("step", [x, *self._state(state)])
        return y, dict(zip(self.names, new))

    def flush(self, state: Arrays) -> np.ndarray:
        return self._run("flush", self._state(state))[0]

    def stream(self, batch_size: int = 1, *, check_finite: bool = False) -> OnnxStream:
        return OnnxStream(self, batch_size, check_finite=check_finite)
