"""``export.executorch``: a streaming model as ExecuTorch ``.pte`` programs, state explicit.

The same three programs as ``onnx_file.py`` (``program.py``), one ``.pte`` file each, plus the
contract as JSON next to them (an ExecuTorch program has no metadata map):

- ``<name>.pte``: ``step``, ``forward(x, state...) -> (y, new_state...)``;
- ``<name>.start.pte``: ``start``, ``forward(x[prologue]) -> (y, new_state...)``;
- ``<name>.flush.pte``: ``flush``, ``forward(state...) -> y``;
- ``<name>.contract.json``: the contract (``contract.py``); the state's order is its ``state``
  list (ExecuTorch methods take positional inputs, there are no names).

The batch axis is dynamic up to ``max_batch`` (ExecuTorch plans memory for the largest batch;
``contract.extra["max_batch"]``).  ``backend="xnnpack"`` hands what XNNPACK supports (float32
convolutions, matmuls, elementwise ops) to it and runs the rest on ExecuTorch's portable kernels;
``"portable"`` runs everything on the portable kernels.  ``start`` and ``flush`` run once per
stream and are always lowered to the portable kernels: their graphs call a layer twice (``flush``
steps a conv on what the layer before it flushed, then flushes the conv), and XNNPACK's pass that
turns 1-D convolutions into 2-D ones reshapes a weight shared by two convolutions only for the
first.  float64 runs on the portable kernels
whatever the backend.  Each file is run with the ExecuTorch runtime against the offline forward
before it is moved into place; nothing is written when a step fails.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from streamwise.core.protocol import StreamingModule
from streamwise.export.contract import Contract, contract_of, sibling
from streamwise.export.onnx_file import example_for, program_input
from streamwise.export.program import (
    FlushProgram,
    NotExportableError,
    Program,
    StartProgram,
    StepProgram,
    plan,
)
from streamwise.runtime.executorch_model import contract_path

BACKENDS = ("xnnpack", "portable")
#: batch the programs are traced at: XNNPACK's dynamic shapes want an example of at least 16
#: rows (with fewer its upper bound for the batch becomes 15)
ET_TRACE_BATCH = 16


def executorch(model: StreamingModule, path: str | os.PathLike[str], chunk: int, *,
               example: Tensor | None = None, dtype: torch.dtype = torch.float32,
               check: bool = True, backend: str = "xnnpack", max_batch: int = 64) -> Contract:
    """Export ``model`` for chunks of ``chunk`` input frames as ``.pte`` files; return the
    contract written (also to ``<name>.contract.json``).

    ``example``: an input tensor (any batch and length) where the model does not fix its frame
    shape.  ``check``: run the files with the ExecuTorch runtime against the offline forward
    before writing them.  ``max_batch``: the most rows one call takes."""
    path = Path(path)
    if path.suffix != ".pte":
        raise ValueError(f"an ExecuTorch file name ends in .pte, got {path.name}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    model = model.eval()
    ex = example_for(model, chunk, example, example.dtype if example is not None else dtype)
    trace = min(max(ET_TRACE_BATCH, 2), max_batch) if max_batch > 1 else 1
    ex = torch.randn([trace, *ex.shape[1:]], dtype=ex.dtype, device=ex.device)
    program = plan(model, chunk, ex)
    contract = contract_of(program, path)
    contract.extra.update(runtime="executorch", backend=backend, max_batch=max_batch,
                          contract_file=contract_path(path).name)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        files = {}
        for kind in ("start", "step", "flush"):
            out = Path(tmp) / sibling(path, kind).name
            _export_one(program, kind, ex, out, backend, max_batch)
            files[kind] = out
        meta = contract_path(Path(tmp) / path.name)
        meta.write_text(contract.to_json())
        if check:
            check_pte(program, files["step"], ex)
        for kind, f in files.items():
            os.replace(f, sibling(path, kind))
        os.replace(meta, contract_path(path))
    return contract


def _export_one(program: Program, kind: str, ex: Tensor, out: Path, backend: str,
                max_batch: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=max_batch) if max_batch > 1 else None
    state = program.flat(program.template)

    def dim(k: int) -> object:
        return None if batch is None else (batch * k if k > 1 else batch)

    state_dims = [None if leaf.batch_axis is None else
                  {leaf.batch_axis: dim(leaf.shape[leaf.batch_axis])} for leaf in program.leaves]
    x = program_input(program, ex, kind)
    x_dims = None if batch is None else {0: batch}
    module: nn.Module
    args: tuple[Tensor, ...]
    dims: tuple[object, ...]
    if kind == "start":
        module, args, dims = StartProgram(program), (x,), (x_dims,)
    elif kind == "step":
        module, args = StepProgram(program), (x, *state)
        dims = (x_dims, tuple(state_dims)) if state_dims else (x_dims,)  # forward(x, *state)
    else:
        module, args = FlushProgram(program), tuple(state)
        dims = (tuple(state_dims),) if state_dims else ()  # forward(*state)
    name = type(program.model).__name__
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.export.export(module, args, dynamic_shapes=dims, strict=False)
    except Exception as e:  # noqa: BLE001 - torch.export's many errors, named with the program
        raise NotExportableError(
            f"torch.export could not trace the {kind} program of {name}: {_first_line(e)}") from e
    logging.getLogger("executorch").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

            partitioner = []
            if backend == "xnnpack" and kind == "step":  # start/flush: portable (see above)
                from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
                    XnnpackPartitioner,
                )

                partitioner = [XnnpackPartitioner()]
            # the IR check re-runs ops on the traced shapes and fixes the batch where a
            # decomposition (aten.gru's) guards on it; ops outside the portable set still fail
            # in to_executorch or at the check's first run
            config = EdgeCompileConfig(_check_ir_validity=False)
            et = to_edge_transform_and_lower(exported, partitioner=partitioner,
                                             compile_config=config).to_executorch()
    except Exception as e:  # noqa: BLE001 - lowering errors, named with the op they stop at
        op = aten_op(e)
        raise NotExportableError(
            f"ExecuTorch could not lower the {kind} program of {name}"
            + (f" at op {op}" + _layer_of(exported, op) if op else "")
            + f" ({backend}): {_first_line(e)}") from e
    with open(out, "wb") as f:
        et.write_to_file(f)


_OP = re.compile(r"\b(?:torch\.ops\.aten|aten)(?:\.|::)([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_]+)?)")


def aten_op(e: BaseException) -> str | None:
    """The ``aten.<op>`` a lowering error names (in its message or its causes), if any."""
    seen: BaseException | None = e
    while seen is not None:
        m = _OP.search(str(seen))
        if m:
            return f"aten.{m.group(1)}"
        seen = seen.__cause__ or seen.__context__
    return None


def _layer_of(exported: torch.export.ExportedProgram, op: str) -> str:
    """`` in layer <path>`` for the first node of ``op`` in the traced graph (from its stack)."""
    short = op.removeprefix("aten.").split(".")[0]
    for node in exported.graph.nodes:
        if node.op == "call_function" and short in str(node.target):
            stack = node.meta.get("nn_module_stack") or {}
            if stack:
                path = list(stack.values())[-1][0]
                return f" in layer {path.removeprefix('L__self__.').removeprefix('model.')}"
    return ""


def check_pte(program: Program, step_file: Path, ex: Tensor, *, batch: int = 2,
              chunks: int = 3, seed: int = 0) -> float:
    """``check.check_files`` for ``.pte`` files: stream ``prologue + chunks*chunk`` random frames
    through them in irregular pushes and compare with the offline forward."""
    import numpy as np

    from streamwise.export.check import TOLERANCE, ExportMismatchError, reference, relative_error
    from streamwise.runtime.executorch_model import ExecutorchModel
    from streamwise.runtime.onnx_stream import OnnxStream

    g = torch.Generator().manual_seed(seed)
    axis = program.time_axis % ex.dim()
    length = program.prologue + chunks * program.chunk
    shape = list(ex.shape)
    shape[0], shape[axis] = batch, length
    x = torch.randn(shape, generator=g, dtype=ex.dtype)
    want = reference(program, x)
    name = type(program.model).__name__
    try:
        s = OnnxStream(ExecutorchModel(step_file), batch)
        rng = np.random.default_rng(seed)
        ys, t = [], 0
        while t < length:
            n = min(int(rng.integers(0, 2 * program.chunk + 2)), length - t)
            ys.append(s.push(x.narrow(axis, t, n).numpy()))
            t += n
        ys.append(s.close())
    except Exception as e:  # noqa: BLE001 - the runtime refuses a program it has no kernel for
        raise NotExportableError(f"the ExecuTorch runtime cannot run the exported {name} in "
                                 f"{str(program.dtype).replace('torch.', '')}: "
                                 f"{_first_line(e)}") from e
    got = np.concatenate(ys, program.out_time_axis % want.dim())
    err = relative_error(got, want)
    if not err <= TOLERANCE.get(program.dtype, 1e-5):
        what = (f"shape {list(got.shape)} vs {list(want.shape)}" if got.shape != want.shape
                else f"max error {err:.3g} of the output's scale")
        raise ExportMismatchError(
            f"the exported .pte files of {name} do not reproduce its offline forward ({what}, "
            f"over {length} frames in irregular pushes)")
    return err


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
