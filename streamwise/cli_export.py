"""``streamwise export``: a model as fixed-chunk files with explicit state, checked before written.

The files are written into a temporary folder beside ``--out``, checked there (the exporter's own
check, then ``--trials`` random irregular chunkings of random batches and lengths through the
runtime, against the torch model's offline forward), and only then moved into place with
``os.replace``; a refusal or a mismatch leaves nothing behind.  Exit codes: 0 written, 1 the files
do not reproduce the model (``ExportMismatchError``), 2 a refusal (``NotExportableError``) or bad
arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamwise.cli_types import COUNT, SEED, number, shape
from streamwise.core.factory import load_factory

FORMATS = ("onnx", "executorch")
NOT_AVAILABLE = "ExecuTorch export is not available in this build"


def _say(text: str) -> None:
    print(f"streamwise export: {text}", file=sys.stderr)


def _streaming(args: argparse.Namespace, model: torch.nn.Module, x: torch.Tensor) -> Any:
    """The model to export: itself, or ``sw.convert``'s stream of a plain torch model."""
    from streamwise.core.protocol import StreamingModule

    if isinstance(model, StreamingModule):
        return model
    from streamwise.convert.convert import convert

    print(f"{args.factory} is a plain {type(model).__name__}: converting it with "
          f"sw.convert (time on axis {args.time_dim}) before export")
    return convert(model, x, args.time_dim, seed=args.seed)


def _writer(fmt: str) -> Any:
    """The export function of ``fmt`` (ExecuTorch's imported only when asked for)."""
    if fmt == "onnx":
        from streamwise.export import onnx

        return onnx
    try:
        from streamwise.export.executorch_file import executorch
    except ModuleNotFoundError as e:
        if e.name not in ("streamwise.export.executorch_file", "executorch"):
            raise
        raise NotImplementedError(NOT_AVAILABLE) from e
    return executorch


def exact_length(contract: Any, rng: np.random.Generator) -> int:
    """A random stream length the export is exact for (a partial last chunk when causal)."""
    n = contract.prologue + int(rng.integers(0, 5)) * contract.chunk
    if contract.delay == "0" and rng.random() < 0.5:
        n += int(rng.integers(1, contract.chunk + 1))
    return n


def irregular(length: int, chunk: int, rng: np.random.Generator) -> list[int]:
    """Push sizes summing to ``length``: 0, 1 and sizes across the chunk, in random order."""
    sizes: list[int] = []
    while sum(sizes) < length:
        sizes.append(min(int(rng.choice([0, 1, int(rng.integers(0, 2 * chunk + 2))])),
                         length - sum(sizes)))
    return sizes


def check_runtime(step_file: Path, reference: torch.nn.Module, contract: Any, x: torch.Tensor,
                  trials: int, seed: int) -> float:
    """Max error (over the output's scale) of the files against ``reference``'s offline forward
    over ``trials`` random batches, lengths and irregular chunkings; ``ExportMismatchError``
    past the tolerance, naming the trial."""
    from streamwise.export.check import TOLERANCE, ExportMismatchError, relative_error
    from streamwise.runtime import OnnxModel, OnnxStream

    runtime = OnnxModel(step_file)
    rng = np.random.default_rng(seed)
    axis = contract.time_axis % x.dim()
    worst = 0.0
    for trial in range(trials):
        batch, length = int(rng.integers(1, 4)), exact_length(contract, rng)
        size = list(x.shape)
        size[0], size[axis] = batch, length
        g = torch.Generator().manual_seed(seed * 1000 + trial)
        xs = torch.randn(size, generator=g, dtype=x.dtype)
        with torch.inference_mode():
            want = reference(xs)
        s, ys, t = OnnxStream(runtime, batch), [], 0
        sizes = irregular(length, contract.chunk, rng)
        for n in sizes:
            ys.append(s.push(xs.narrow(axis, t, n).numpy()))
            t += n
        ys.append(s.close())
        got = np.concatenate(ys, contract.out_time_axis % want.dim())
        err = relative_error(got, want)
        worst = max(worst, err)
        if not err <= TOLERANCE.get(x.dtype, 1e-5):
            what = (f"shape {list(got.shape)} vs {list(want.shape)}" if got.shape != want.shape
                    else f"max error {err:.3g} of the output's scale")
            raise ExportMismatchError(
                f"the exported files differ from the torch model's offline forward ({what}) on "
                f"trial {trial + 1}: batch {batch}, {length} frames pushed as {sizes}")
    return worst


def _cmd_export(args: argparse.Namespace) -> int:
    from streamwise.convert.trace import ConversionError
    from streamwise.export import ExportMismatchError, NotExportableError

    n = len(args.shape)
    if not -n <= args.time_dim < n:
        raise ValueError(f"--time-dim must be >= {-n} and <= {n - 1} for a {n}-axis --shape, "
                         f"got {args.time_dim}")
    out = Path(args.out)
    suffix = {"onnx": ".onnx", "executorch": ".pte"}[args.format]
    if out.suffix != suffix:
        raise ValueError(f"--out for --format {args.format} must end in {suffix}, got {out.name}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out's folder {out.parent} does not exist")
    try:
        write = _writer(args.format)
    except NotImplementedError as e:
        _say(str(e))
        return 2
    dtype = getattr(torch, args.dtype)
    original = load_factory(args.factory).to(dtype).eval()
    torch.manual_seed(args.seed)
    x = torch.randn(*args.shape, dtype=dtype)
    try:
        model = _streaming(args, original, x)
        with tempfile.TemporaryDirectory(prefix=".streamwise-export-", dir=out.parent) as tmp:
            contract = write(model, Path(tmp) / out.name, args.chunk, example=x, dtype=dtype)
            print(contract.summary())
            if args.format == "onnx":
                err = check_runtime(Path(tmp) / out.name, original, contract, x, args.trials,
                                    args.seed)
                print(f"OK: {args.trials} random chunkings (batches 1-3, irregular pushes, 0 "
                      f"and 1 included) match the torch model; max error {err:.2g} of the "
                      "output's scale")
            else:
                print("OK: checked by the ExecuTorch exporter against the eager stream")
            written = sorted(Path(tmp).iterdir())
            for f in written:
                os.replace(f, out.parent / f.name)
    except ExportMismatchError as e:
        _say(f"MISMATCH, nothing written: {e}")
        return 1
    except ConversionError as e:
        _say(f"{args.factory} cannot be converted to a stream, nothing written: {e.summary}")
        return 2
    except NotExportableError as e:
        _say(f"REFUSED, nothing written: {e}")
        return 2
    print("wrote " + ", ".join(str(out.parent / f.name) for f in written))
    return 0


def _shape_words(words: list[tuple[int, ...]]) -> tuple[int, ...]:
    return tuple(d for w in words for d in w)


def add_export(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a model as fixed-chunk ONNX/ExecuTorch files with "
                       "its state as explicit inputs and outputs, checked before written")
    e.add_argument("factory", help="pkg.module:factory returning a streamwise model (a plain "
                   "torch model is converted with sw.convert first)")
    e.add_argument("--shape", type=shape, nargs="+", required=True,
                   help="an example input's shape: 1 3 64 or 1,3,64")
    e.add_argument("--chunk", type=COUNT, required=True,
                   help="input frames per step call (a multiple of the model's period)")
    e.add_argument("--format", choices=FORMATS, default="onnx")
    e.add_argument("--out", required=True, help="the step file (.onnx or .pte); start and "
                   "flush files are written beside it")
    e.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    e.add_argument("--time-dim", type=number(int), default=-1,
                   help="the time axis of the input (for a plain torch model)")
    e.add_argument("--trials", type=COUNT, default=5, help="random chunkings to check with")
    e.add_argument("--seed", type=SEED, default=0)
    e.set_defaults(fn=_run)


def _run(args: argparse.Namespace) -> int:
    args.shape = _shape_words(args.shape)
    return _cmd_export(args)
