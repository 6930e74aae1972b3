"""``streamwise live``: SmolLM2-135M listens to Pride and Prejudice and writes notes meanwhile.

The book's tokens arrive at ``--rate`` tokens per second; every model call takes what arrived and
writes one token (``live/loop.py``).  The notes appear as they are written; a status line every
``every`` calls gives the tokens read, the ingestion lag, the writing rate and the cache size.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from streamwise.hf.demo import penalise, sample

PROMPT = ("<|im_start|>system\nYou listen to a novel read aloud and write short notes on what "
          "happens.<|im_end|>\n<|im_start|>assistant\nNotes:")


def novel_ids(tokenizer: Any, tokens: int) -> list[int]:
    """The first ``tokens`` token ids of Pride and Prejudice from 'Chapter 1' on."""
    from streamwise.core.data_paths import shared_data

    path = shared_data() / "text" / "pride_and_prejudice.txt"
    if not path.exists():
        raise FileNotFoundError(f"Pride and Prejudice not found at {path}")
    text = path.read_text(encoding="utf-8")
    text = text[text.find("Chapter 1\n"):]
    return [int(t) for t in tokenizer(text[: tokens * 8]).input_ids[:tokens]]



def run_live_demo(seconds: float = 120.0, rate: float = 8.0, gguf: str | None = None,
                  temperature: float = 0.7, top_k: int = 40, repetition_penalty: float = 1.2,
                  threads: int = 2, seed: int = 0, every: int = 32, out: TextIO = sys.stdout,
                  status: TextIO = sys.stderr) -> dict[str, Any]:
    from streamwise.hf.gguf import find_smollm2, load_gguf
    from streamwise.live.loop import Call, LiveLoop, dual_cache, run

    torch.set_num_threads(threads)
    model, tok = load_gguf(Path(gguf) if gguf else find_smollm2())
    book = novel_ids(tok, int(seconds * rate) + 1)
    gen = torch.Generator().manual_seed(seed)
    written: list[int] = []

    def pick(logits: torch.Tensor) -> int:
        logits = penalise(logits, written[-64:], repetition_penalty)
        return int(sample(logits, temperature, top_k, gen)[0])

    loop = LiveLoop(model, tok(PROMPT).input_ids, cache=dual_cache(model, 512, 256), pick=pick)
    shown, read, t0 = 0, 0, time.monotonic()
    lags: list[float] = []
    last: dict[str, Any] = {}
    out.write("Notes:")

    def on_call(c: Call) -> None:
        nonlocal shown, read
        written.append(c.output)
        read += len(c.ingested)
        lags.extend(c.end - a for a in c.arrivals)
        if len(written) % 4 == 0:  # whole groups of tokens decode to whole characters
            out.write(tok.decode(written[shown:]))
            out.flush()
            shown = len(written)
        if len(written) % every == 0:
            last.update({"seconds": c.end, "read_tokens": read, "written_tokens": len(written),
                         "lag_s_p50": float(np.median(lags)) if lags else 0.0,
                         "lag_s_max": max(lags) if lags else 0.0,
                         "write_tokens_per_s": len(written) / max(c.end, 1e-9),
                         "cache_entries": loop.cache.stored_tokens()})
            status.write(f"\n[{c.end:6.1f} s] read {read} tokens (lag p50 "
                         f"{last['lag_s_p50']:.2f} s, max {last['lag_s_max']:.2f} s), wrote "
                         f"{len(written)} ({last['write_tokens_per_s']:.1f} tok/s), cache "
                         f"{last['cache_entries']} entries\n")
            status.flush()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the demo, not with a trace
        run(loop, book, rate, calls=10**9, on_call=on_call, until=seconds)
    out.write(tok.decode(written[shown:]) + "\n")
    last["wall_s"] = time.monotonic() - t0
    return last
