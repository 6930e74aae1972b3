"""``streamwise bench ...``: the benchmark commands (results as JSON + PNG)."""

from __future__ import annotations

import argparse

from streamwise.cli_bench_llm import add_attention
from streamwise.cli_types import COUNT, NON_NEGATIVE, POSITIVE, SEED


def _cmd_bench(args: argparse.Namespace) -> int:
    from streamwise.bench.conv import run_conv_bench

    run_conv_bench(out_dir=args.out, seconds=args.seconds, budget_s=args.budget,
                   chunks=tuple(args.chunks), threads=args.threads, rounds=args.rounds,
                   runtimes=tuple(args.runtimes))
    return 0


def _cmd_bench_seq(args: argparse.Namespace) -> int:
    from streamwise.bench.sequence import run_sequence_bench

    run_sequence_bench(out_dir=args.out, epochs=args.epochs, seed=args.seed)
    return 0


def _cmd_bench_delta(args: argparse.Namespace) -> int:
    from streamwise.bench.delta import run_delta_bench

    run_delta_bench(out_dir=args.out, repeats=args.repeats)
    return 0


def _cmd_bench_serve(args: argparse.Namespace) -> int:
    from streamwise.bench.serve import run_serve_bench

    run_serve_bench(args.out, models=args.models, seconds=args.seconds, soak=args.soak,
                    checkpoint_every=args.checkpoint_every, soak_only=args.soak_only,
                    runtime=args.runtime, onnx_chunk=args.onnx_chunk,
                    kill_every=args.kill_every, soak_streams=args.soak_streams,
                    compare=args.compare)
    return 0


def _cmd_bench_exported(args: argparse.Namespace) -> int:
    from streamwise.bench.exported_models import run

    run(args.out, rounds=args.rounds, seconds=args.seconds)
    return 0


def _cmd_bench_asr(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.asr import run

    run(Path(args.out), n_streams=args.streams, n_utts=args.utterances, threads=args.threads)
    return 0


def _cmd_bench_asr_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.asr_train import WEIGHTS, train

    train(Path(args.out), Path(args.weights) if args.weights else WEIGHTS, args.n_train,
          epochs=args.epochs, seed=args.seed)
    return 0


def _add_asr(bsub: argparse._SubParsersAction) -> None:
    ba = bsub.add_parser("asr", help="the live word recogniser: WER against latency at every "
                         "chunk, local agreement, offline; streaming-perception WER, flicker, RTF")
    ba.add_argument("--out", default="bench-results")
    ba.add_argument("--streams", type=COUNT, default=30, help="timed test streams (4-8 words)")
    ba.add_argument("--utterances", type=COUNT, default=300, help="held-out utterances for WER")
    ba.add_argument("--threads", type=COUNT, default=1)
    ba.set_defaults(fn=_cmd_bench_asr)
    bt = bsub.add_parser("asr-train", help="synthesise speech with espeak-ng and train the "
                         "shipped word recogniser (about 45 min on 2 cores)")
    bt.add_argument("--out", default="docs/speech/train", help="training log (JSON + PNG)")
    bt.add_argument("--weights", default=None, help="where to write the weights (default: the "
                    "package's assets/asr_words.pt)")
    bt.add_argument("--n-train", type=COUNT, default=20_000)
    bt.add_argument("--epochs", type=COUNT, default=16)
    bt.add_argument("--seed", type=SEED, default=0)
    bt.set_defaults(fn=_cmd_bench_asr_train)


def _cmd_bench_continual(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.continual import run

    run(Path(args.out), progress=not args.quiet)
    return 0


def _cmd_bench_prompt_tpp(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.prompt_tpp import run

    run(Path(args.out), periods=args.periods, epochs=args.epochs, progress=not args.quiet)
    return 0


def _cmd_bench_movielens(args: argparse.Namespace) -> int:
    """``bench finalmlp | retrieval | splash``: one pass over MovieLens-100K in time order."""
    import importlib
    from pathlib import Path

    run = importlib.import_module(f"streamwise.bench.{args.bench}").run
    run(Path(args.out), limit=args.limit, progress=not args.quiet)
    return 0


_MOVIELENS = {
    "finalmlp": "FinalMLP learned online on MovieLens-100K as a click stream (rating >= 4) "
                "vs a single-stream MLP and River's logistic regression and FM: AUC, log loss",
    "retrieval": "two-tower retrieval from the MovieLens-100K stream: popularity, online, "
                 "refit and graph-aggregated (2T-HGNN-style) towers, recall@10 / NDCG@10",
    "splash": "SPLASH node-property prediction on the MovieLens-100K edge stream (next-day "
              "genre distribution per user) vs persistence and moving averages, NDCG@10",
}


def _cmd_bench_stream_bp(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.stream_bp import run

    run(Path(args.out), budget=args.budget, longest=args.longest, chunk=args.chunk,
        steps=args.steps, progress=not args.quiet)
    return 0


def _cmd_bench_signal_padding(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.signal_padding import run

    run(Path(args.out), window=args.window, hop=args.hop, steps=args.steps,
        progress=not args.quiet)
    return 0


def _cmd_bench_laser(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.laser import run

    run(Path(args.out), length=args.length)
    return 0


def _cmd_bench_stream_fm(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.stream_fm import run

    run(Path(args.out), steps=args.steps, ode_steps=tuple(args.ode_steps),
        midpoint_steps=tuple(args.midpoint_steps), chunk_ms=args.chunk_ms,
        progress=not args.quiet)
    return 0


def _cmd_bench_stream_dit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.stream_dit import run

    run(Path(args.out), steps=args.steps, chunks=args.chunks, chunk=args.chunk,
        buffer=args.buffer, anchor=args.anchor, progress=not args.quiet)
    return 0


def _cmd_bench_dual_stream(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.dual_stream import run

    run(Path(args.out), steps=args.steps, progress=not args.quiet)
    return 0


def _add_learn(bsub: argparse._SubParsersAction) -> None:
    bl = bsub.add_parser("laser", help="LASER: overlapping windows of a model with per-window "
                         "scales, with no, one-scale and layer-wise scale alignment")
    bl.add_argument("--out", default="docs/convert")
    bl.add_argument("--length", type=COUNT, default=2000, help="frames streamed")
    bl.set_defaults(fn=_cmd_bench_laser)
    bs = bsub.add_parser("signal-padding", help="StreamiNNC: a CNN trained on zero-padded "
                         "windows of NAB series, streamed (signal padding) vs windowed, and the "
                         "deviation's bound")
    bs.add_argument("--out", default="docs/convert")
    bs.add_argument("--window", type=COUNT, default=64)
    bs.add_argument("--hop", type=COUNT, default=16)
    bs.add_argument("--steps", type=COUNT, default=400, help="training steps")
    bs.add_argument("--quiet", action="store_true", help="no progress bars")
    bs.set_defaults(fn=_cmd_bench_signal_padding)
    bf = bsub.add_parser("stream-fm", help="Stream.FM: a frame-causal flow-matching denoiser "
                         "trained on espeak-ng speech + noise, streamed at 1/2/4 ODE steps, vs the "
                         "shipped SEANet denoiser (SNR, algorithmic + compute = total latency)")
    bf.add_argument("--out", default="docs/speech")
    bf.add_argument("--steps", type=COUNT, default=700, help="training steps")
    bf.add_argument("--ode-steps", type=COUNT, nargs="+", default=[1, 2, 4],
                    help="Euler steps per frame to evaluate")
    bf.add_argument("--midpoint-steps", type=COUNT, nargs="*", default=[1],
                    help="midpoint steps (two network calls each) to evaluate")
    bf.add_argument("--chunk-ms", type=POSITIVE, default=10.0, help="push size for latency")
    bf.add_argument("--quiet", action="store_true", help="no progress bars")
    bf.set_defaults(fn=_cmd_bench_stream_fm)
    bd = bsub.add_parser("stream-dit", help="StreamDiT + StreamingT2V: a flow-matching DiT "
                         "continues log-mel speech chunk by chunk with a moving noise buffer, "
                         "without and with short-term and long-term anchor memories")
    bd.add_argument("--out", default="docs/speech")
    bd.add_argument("--steps", type=COUNT, default=1500, help="training steps")
    bd.add_argument("--chunks", type=COUNT, default=120, help="chunks generated per prompt")
    bd.add_argument("--chunk", type=COUNT, default=8, help="frames per chunk (10 ms each)")
    bd.add_argument("--buffer", type=COUNT, default=6, help="chunks in the moving buffer "
                    "(= denoising steps)")
    bd.add_argument("--anchor", type=COUNT, default=2, help="first chunks kept as the anchor")
    bd.add_argument("--quiet", action="store_true", help="no progress bars")
    bd.set_defaults(fn=_cmd_bench_stream_dit)
    bq = bsub.add_parser("dual-stream", help="Dual-Stream Transformer: standard, independent, "
                         "Kronecker and dense head mixing trained at equal size on tinyshakespeare "
                         "(validation loss, streaming check)")
    bq.add_argument("--out", default="docs/models")
    bq.add_argument("--steps", type=COUNT, default=600, help="training steps per variant")
    bq.add_argument("--quiet", action="store_true", help="no progress bars")
    bq.set_defaults(fn=_cmd_bench_dual_stream)
    bb = bsub.add_parser("stream-bp", help="StreamBP vs backprop vs gradient checkpointing: "
                         "longest sequence within a memory budget, time per gradient")
    bb.add_argument("--out", default="docs/train")
    bb.add_argument("--budget", type=POSITIVE, default=256.0, help="MiB above the loaded model")
    bb.add_argument("--longest", type=COUNT, default=32768, help="longest length tried")
    bb.add_argument("--chunk", type=COUNT, default=64, help="StreamBP chunk (tokens)")
    bb.add_argument("--steps", type=COUNT, default=200, help="training steps of the model")
    bb.add_argument("--quiet", action="store_true", help="no progress bars")
    bb.set_defaults(fn=_cmd_bench_stream_bp)
    for name, text in _MOVIELENS.items():
        bm = bsub.add_parser(name, help=text)
        bm.add_argument("--out", default="docs/learn")
        bm.add_argument("--limit", type=COUNT, default=None,
                        help="only the first LIMIT ratings (default: all 100,000)")
        bm.add_argument("--quiet", action="store_true", help="no progress bars")
        bm.set_defaults(fn=_cmd_bench_movielens)

    bc = bsub.add_parser("continual", help="the task-stream protocol: class-incremental digits "
                         "and 8 real tasks; fine-tuned MLP, DKVB, River's Hoeffding tree")
    bc.add_argument("--out", default="docs/learn")
    bc.add_argument("--quiet", action="store_true", help="no progress bars")
    bc.set_defaults(fn=_cmd_bench_continual)
    bp = bsub.add_parser("prompt-tpp", help="point processes learned period after period on "
                         "MovieLens-100K rating times: Poisson, Hawkes, neural TPP, PromptTPP")
    bp.add_argument("--out", default="docs/learn")
    bp.add_argument("--periods", type=COUNT, default=7)
    bp.add_argument("--epochs", type=COUNT, default=5)
    bp.add_argument("--quiet", action="store_true", help="no progress bars")
    bp.set_defaults(fn=_cmd_bench_prompt_tpp)


def add_bench(sub: argparse._SubParsersAction) -> None:
    """The ``bench`` command and its subcommands, on the top-level parser's ``sub``."""
    b = sub.add_parser("bench", help="benchmarks (results as JSON + PNG)")
    bsub = b.add_subparsers(dest="bench", required=True)
    bc = bsub.add_parser("conv", help="streaming (eager, onnxruntime, "
                         "ExecuTorch) vs window recompute vs cached_conv vs offline")
    bc.add_argument("--out", default="bench-results")
    bc.add_argument("--seconds", type=POSITIVE, default=4.0, help="seconds of audio to stream")
    bc.add_argument("--budget", type=POSITIVE, default=8.0,
                    help="max seconds per method and chunk size (long runs are cut short)")
    bc.add_argument("--chunks", type=COUNT, nargs="+", default=[1, 2, 16, 160, 1600])
    bc.add_argument("--threads", type=COUNT, default=1, help="threads for every method")
    bc.add_argument("--rounds", type=COUNT, default=3, help="interleaved rounds")
    bc.add_argument("--runtimes", nargs="*", choices=["onnx", "executorch"],
                    default=["onnx", "executorch"], help="export runtimes to include")
    bc.set_defaults(fn=_cmd_bench)
    bs = bsub.add_parser("seq", help="LMU, Aaren, LIF, GRU, causal conv on sequential digits")
    bs.add_argument("--out", default="bench-results")
    bs.add_argument("--epochs", type=COUNT, default=40)
    bs.add_argument("--seed", type=SEED, default=0)
    bs.set_defaults(fn=_cmd_bench_seq)
    bd = bsub.add_parser("delta", help="delta layers: sparsity vs wall-clock speed on speech")
    bd.add_argument("--out", default="bench-results")
    bd.add_argument("--repeats", type=COUNT, default=3)
    bd.set_defaults(fn=_cmd_bench_delta)
    sv = bsub.add_parser("serve", help="load test: N real-time clients on loopback")
    sv.add_argument("--out", default="bench-results")
    sv.add_argument("--models", nargs="+", default=["tiny_vad", "denoiser"])
    sv.add_argument("--seconds", type=POSITIVE, default=8.0, help="seconds per load level")
    sv.add_argument("--soak", type=NON_NEGATIVE, default=0.0,
                    help="soak minutes at 80%% of held load")
    sv.add_argument("--soak-only", action="store_true",
                    help="skip the sweep; soak at 80%% of the held load in OUT/serve.json")
    sv.add_argument("--checkpoint-every", type=COUNT, default=1,
                    help="server checkpoint interval in chunks (1: every reply durable)")
    sv.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                    help="step sessions in torch or through onnxruntime (serve --runtime)")
    sv.add_argument("--onnx-chunk", type=COUNT, default=None,
                    help="export chunk of --runtime onnx (default: the 20 ms client chunk)")
    sv.add_argument("--kill-every", type=NON_NEGATIVE, default=0.0, metavar="SECONDS",
                    help="SIGKILL the soak's server once in every SECONDS, at a random moment, "
                    "and restart it on the same store (writes OUT/serve-faults.json/.png)")
    sv.add_argument("--soak-streams", type=COUNT, default=None,
                    help="soak with this many streams instead of 80%% of the held load")
    sv.add_argument("--compare", choices=["batching", "slo"], default="batching",
                    help="batched scheduler against no batching, or against SLO-aware batch "
                    "sizes (serve --slo-batching)")
    sv.set_defaults(fn=_cmd_bench_serve)
    be = bsub.add_parser("exported-models", help="silero-vad and PESTO converted and exported "
                         "to ONNX vs the vendor's ONNX model and PESTO's streaming mode")
    be.add_argument("--out", default="bench-results")
    be.add_argument("--rounds", type=COUNT, default=5, help="interleaved rounds")
    be.add_argument("--seconds", type=POSITIVE, default=10.0, help="seconds of audio")
    be.set_defaults(fn=_cmd_bench_exported)
    add_attention(bsub)
    _add_asr(bsub)
    _add_learn(bsub)
