"""``export.onnx``: a streaming model as ONNX files with its state as explicit inputs and outputs.

Three files, one per program of ``program.py``, each with the contract in its metadata
(``streamwise.contract``, JSON; ``contract.py``):

- ``<name>.onnx``: ``step``, inputs ``x`` and ``state.<path>``..., outputs ``y`` and
  ``new_state.<path>``... in the same order;
- ``<name>.start.onnx``: ``start``, input ``x`` (the first ``prologue`` frames), outputs ``y`` and
  ``new_state.<path>``...;
- ``<name>.flush.onnx``: ``flush``, inputs ``state.<path>``..., output ``y``.

The batch axis of ``x``, ``y`` and every state tensor that has one is dynamic.  Each file is checked
against the eager stream with onnxruntime before it is moved into place; nothing is written when a
check fails.
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
from streamwise.export.onnx_ops import table
from streamwise.export.program import (
    FlushProgram,
    NotExportableError,
    Program,
    StartProgram,
    StepProgram,
    plan,
)

#: batch size the programs are traced at (not 1: torch.export fixes axes of size 1)
TRACE_BATCH = 3


def example_for(model: StreamingModule, frames: int, example: Tensor | None,
                dtype: torch.dtype) -> Tensor:
    """An input of ``frames`` frames shaped like ``example`` (or from the model's channels)."""
    if example is None:
        ch, nd = model.fixed_in_channels, model.in_ndim
        if ch is None or nd not in (3, None):
            raise NotExportableError(
                f"{type(model).__name__} does not fix its input's channels: pass example= (one "
                "input tensor, any length) so the export knows the frame shape")
        shape = [TRACE_BATCH, frames, ch] if model.time_axis == 1 else [TRACE_BATCH, ch, frames]
        return torch.randn(shape, dtype=dtype)
    axis = model.time_axis % example.dim()
    shape = list(example.shape)
    shape[0], shape[axis] = TRACE_BATCH, frames
    return torch.randn(shape, dtype=example.dtype, device=example.device)


def onnx(model: StreamingModule, path: str | os.PathLike[str], chunk: int, *,
         example: Tensor | None = None, dtype: torch.dtype = torch.float32,
         check: bool = True) -> Contract:
    """Export ``model`` for chunks of ``chunk`` input frames; return the contract written.

    ``example``: an input tensor (any batch and length) where the model does not fix its frame
    shape (a converted model, a 2-D conv).  ``check``: run the files with onnxruntime against the
    eager stream before writing them (over two chunks past the start, and the flush)."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"an ONNX file name ends in .onnx, got {path.name}")
    model = model.eval()
    ex = example_for(model, chunk, example, example.dtype if example is not None else dtype)
    program = plan(model, chunk, ex)
    contract = contract_of(program, path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        files = {}
        for kind in ("start", "step", "flush"):
            out = Path(tmp) / sibling(path, kind).name
            _export_one(program, kind, ex, out, contract)
            files[kind] = out
        if check:
            from streamwise.export.check import check_files

            check_files(program, files, ex)
        for kind, f in files.items():
            os.replace(f, sibling(path, kind))
    return contract


def _export_one(program: Program, kind: str, ex: Tensor, out: Path, contract: Contract) -> None:
    names = program.state_names
    batch = torch.export.Dim("batch", min=1)
    state = program.flat(program.template)
    state_dims = [None if leaf.batch_axis is None else
                  {leaf.batch_axis: batch * leaf.shape[leaf.batch_axis]
                   if leaf.shape[leaf.batch_axis] > 1 else batch}
                  for leaf in program.leaves]
    x = program_input(program, ex, kind)
    module: nn.Module
    args: tuple[Tensor, ...]
    if kind == "start":
        module, args = StartProgram(program), (x,)
        dims: tuple = ({0: batch},)
        ins, outs = ["x"], ["y", *(f"new_state.{n}" for n in names)]
    elif kind == "step":
        module, args = StepProgram(program), (x, *state)
        # forward(x, *state); a stateless model's step is forward(x)
        dims = ({0: batch}, tuple(state_dims)) if state_dims else ({0: batch},)
        ins, outs = ["x", *(f"state.{n}" for n in names)], ["y", *(f"new_state.{n}" for n in names)]
    else:
        module, args = FlushProgram(program), tuple(state)
        dims = (tuple(state_dims),) if state_dims else ()  # forward(*state)
        ins, outs = [f"state.{n}" for n in names], ["y"]
    # the exporter warns about torchvision ops it cannot register (there is no torchvision here)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(
                module, args, dynamo=True, input_names=ins, output_names=outs,
                dynamic_shapes=dims, verbose=False, optimize=True,
                custom_translation_table=table())
    except Exception as e:  # noqa: BLE001 - the exporter's many errors, named with the program
        raise NotExportableError(
            f"torch.onnx could not export the {kind} program of {type(program.model).__name__}: "
            f"{_first_line(e)}") from e
    assert onnx_program is not None
    model_proto = onnx_program.model_proto
    contract.write_into(model_proto, kind)
    import onnx as onnx_lib

    onnx_lib.save(model_proto, str(out))


def program_input(program: Program, ex: Tensor, kind: str) -> Tensor:
    """The ``x`` a program is traced with: ``prologue`` or ``chunk`` frames of ``ex``'s shape."""
    frames = program.prologue if kind == "start" else program.chunk
    axis = program.time_axis % ex.dim()
    shape = list(ex.shape)
    shape[axis] = frames
    return torch.randn(shape, dtype=ex.dtype, device=ex.device)


def _first_line(e: BaseException) -> str:
    """The exporter's reason in one line: the op it has no ONNX function for, where that is it."""
    chain: list[str] = []
    cause: BaseException | None = e
    while cause is not None:
        chain.append(str(cause))
        cause = cause.__cause__
    found = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", "\n".join(chain))
    if found:
        return (f"ONNX has no function for the op {found.group(1)} (torch 2.13's exporter); "
                "rewrite that call in the model or add it to streamwise/export/onnx_ops.py")
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def flat_outputs(outputs: Tensor | tuple[Tensor, ...]) -> list[Tensor]:
    return [outputs] if isinstance(outputs, Tensor) else list(outputs)
