"""``streamwise convert``: rewrite a plain torch model as a stream, print its report, save it."""

from __future__ import annotations

import argparse
import sys

import torch

from streamwise.cli_types import COUNT, POSITIVE, SEED, number, shape
from streamwise.core.factory import load_factory


def _fails_itself(args: argparse.Namespace, model: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether the model fails on the example itself (then said, instead of blaming convert)."""
    try:
        with torch.no_grad():
            model(x)
    except Exception as own:
        said = str(own).split("\n")[0]
        print(f"streamwise convert: {args.factory} fails on the example input "
              f"{tuple(x.shape)} itself ({type(own).__name__}: {said}); check --shape "
              "and --time-dim", file=sys.stderr)
        return True
    return False


def _cmd_convert(args: argparse.Namespace) -> int:
    from streamwise.convert.convert import convert
    from streamwise.convert.refusal_text import refused_body
    from streamwise.convert.saved import save
    from streamwise.convert.trace import ConversionError

    n = len(args.shape)
    if not -n <= args.time_dim < n:
        raise ValueError(f"--time-dim must be >= {-n} and <= {n - 1} for a {n}-axis --shape, "
                         f"got {args.time_dim}")
    model = load_factory(args.factory)
    dtype = getattr(torch, args.dtype)
    model = model.to(dtype)
    torch.manual_seed(args.seed)
    x = torch.randn(*args.shape, dtype=dtype)
    try:
        stream = convert(model, x, args.time_dim, trials=args.trials, seed=args.seed,
                         sample_rate=args.sample_rate, min_length=args.min_length)
    except ConversionError as e:
        if _fails_itself(args, model, x):
            return 2
        print(f"REFUSED: {args.factory} cannot be converted: {e.summary}\n{refused_body(e)}",
              file=sys.stderr)
        return 1
    except Exception as e:  # not a refusal: say whose failure it is
        if _fails_itself(args, model, x):
            return 2
        print(f"streamwise convert: internal converter error on {args.factory} "
              f"({type(e).__name__}: {e}); the model runs on this input, so this is a "
              "streamwise bug: please report it with the model", file=sys.stderr)
        return 1
    report = stream.report
    assert report is not None  # convert always reports
    print(report.text(ops=args.ops))
    if args.out:
        save(stream, model, args.out, args.factory, x)
        print(f"saved {args.out} (weights + config; rebuild the stream with "
              "streamwise.convert.saved's load)")
    return 0


def add_convert(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("convert", help="rewrite a plain torch model into an exact streaming "
                       "model: prints the report, saves weights + config")
    c.add_argument("factory", help="pkg.module:factory returning a torch.nn.Module")
    c.add_argument("--shape", type=shape, default=(1, 1, 16000),
                   help="example input shape, e.g. 1,1,16000")
    c.add_argument("--time-dim", type=number(int), default=-1, help="the time axis of the input")
    c.add_argument("--sample-rate", type=POSITIVE, default=None,
                   help="input frames per second (latency in ms)")
    c.add_argument("--out", default=None, help="file for the streaming model (.pt)")
    c.add_argument("--trials", type=COUNT, default=3, help="random chunkings to verify with")
    c.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    c.add_argument("--seed", type=SEED, default=0)
    c.add_argument("--ops", action="store_true",
                   help="list every op row (per-frame ops are one summary line by default)")
    c.add_argument("--min-length", type=COUNT, default=None,
                   help="streams are at least this many frames: a branch on the length that "
                        "goes one way from here on is fixed (noted), a shorter stream raises")
    c.set_defaults(fn=_cmd_convert)
