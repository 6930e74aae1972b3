"""``streamwise demo llm``: SmolLM2 writes on and on past its context length with flat memory.

The model (8192 positions of training context) samples one token at a time into a
``StreamingCache(Sinks(4, window - 4))``.  Text appears as it is written; a status line every
``every`` tokens shows the position against the context length, the entries the cache holds, its
KV bytes, the process memory and the speed, so a user sees memory stay put while the position
runs past what the model was trained on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

import psutil
import torch

from streamwise.attention import Sinks

PROMPT = "It is a truth universally acknowledged, that a single man in possession of a good fortune"


def penalise(logits: torch.Tensor, recent: list[int], penalty: float) -> torch.Tensor:
    """Repetition penalty (CTRL): recent tokens' logits divided (positive) or multiplied by it."""
    if penalty == 1.0 or not recent:
        return logits
    idx = torch.tensor(sorted(set(recent)), device=logits.device)
    picked = logits[idx]
    out = logits.clone()
    out[idx] = torch.where(picked > 0, picked / penalty, picked * penalty)
    return out


def sample(logits: torch.Tensor, temperature: float, top_k: int, gen: torch.Generator
           ) -> torch.Tensor:
    """One token id from the last logits (top-k, temperature; greedy when temperature is 0)."""
    if temperature <= 0:
        return logits.argmax(-1, keepdim=True)
    top = logits.topk(top_k)
    probs = torch.softmax(top.values / temperature, -1)
    return top.indices.gather(-1, torch.multinomial(probs, 1, generator=gen))


def run_llm_demo(tokens: int = 0, window: int = 1024, gguf: str | None = None,
                 prompt: str = PROMPT, temperature: float = 0.8, top_k: int = 40,
                 repetition_penalty: float = 1.1, recent: int = 256,
                 every: int = 256, seed: int = 0, threads: int = 2,
                 out: TextIO = sys.stdout, status: TextIO = sys.stderr) -> dict[str, Any]:
    """Generate ``tokens`` tokens (0: until Ctrl-C); returns the last status as a dict."""
    from streamwise.hf import StreamingCache
    from streamwise.hf.gguf import find_smollm2, load_gguf

    torch.set_num_threads(threads)
    model, tok = load_gguf(Path(gguf) if gguf else find_smollm2())
    context = int(model.config.max_position_embeddings)
    cache = StreamingCache(model, Sinks(4, window - 4))
    ids = tok(prompt, return_tensors="pt").input_ids
    gen = torch.Generator().manual_seed(seed)
    proc = psutil.Process()
    out.write(prompt)
    last: dict[str, Any] = {}
    text_ids: list[int] = []
    n, t0, shown = 0, time.perf_counter(), 0
    try:
        with torch.inference_mode():
            while not tokens or n < tokens:
                logits = model(input_ids=ids, past_key_values=cache).logits[0, -1]
                logits = penalise(logits, text_ids[-recent:], repetition_penalty)
                ids = sample(logits, temperature, top_k, gen)[None]
                text_ids.append(int(ids[0, 0]))
                n += 1
                if n % 8 == 0:  # whole groups of tokens decode to whole characters
                    out.write(tok.decode(text_ids[shown:]))
                    out.flush()
                    del text_ids[:-recent]  # only the penalty's window is needed: memory flat
                    shown = len(text_ids)
                if n % every == 0:
                    pos = cache.get_seq_length()
                    last = {"tokens": n, "position": pos, "context_length": context,
                            "cache_entries": cache.stored_tokens(),
                            "kv_mib": cache.nbytes() / 2**20,
                            "rss_mib": proc.memory_info().rss / 2**20,
                            "tokens_per_s": n / (time.perf_counter() - t0)}
                    past = " (past the context length)" if pos > context else ""
                    status.write(
                        f"\n[position {pos}/{context}{past} | cache {last['cache_entries']} "
                        f"entries, KV {last['kv_mib']:.1f} MiB | RSS {last['rss_mib']:.0f} MiB | "
                        f"{last['tokens_per_s']:.1f} tok/s]\n")
                    status.flush()
    except KeyboardInterrupt:
        status.write("\n[stopped]\n")
    out.write(tok.decode(text_ids[shown:]) + "\n")  # the last tokens not yet shown
    return last
