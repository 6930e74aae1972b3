"""``streamwise bench llm``: SmolLM2-135M reads Pride and Prejudice token by token under several
KV-cache policies; perplexity, per-token latency and KV memory against position.

Methods (cache of ``window`` tokens in all bounded ones):

- ``full``: ``DynamicCache``, every token kept (up to ``--full-tokens``: its cost grows);
- ``window``: the last ``window`` tokens only (StreamingLLM's "window attention" baseline);
- ``sinks``: 4 sinks + the last ``window - 4`` tokens, within-cache positions (StreamingLLM);
- ``recompute``: each token re-reads its last ``window`` tokens from scratch (exact sliding window,
  quadratic), measured on ``--recompute-tokens`` tokens for the speed ratio.

Teacher forcing: every step feeds the true token and scores the next one.  JSON + PNG.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.attention import Sinks, Window
from streamwise.bench.report import flatness, write_report


def book_ids(tokenizer: Any, tokens: int) -> torch.Tensor:
    """The first ``tokens + 1`` token ids of Pride and Prejudice from ``../shared/data/text``."""
    from streamwise.core.data_paths import shared_data

    path = shared_data() / "text" / "pride_and_prejudice.txt"
    if not path.exists():
        raise FileNotFoundError(f"Pride and Prejudice not found at {path}")
    ids = tokenizer(path.read_text(encoding="utf-8"), return_tensors="pt").input_ids
    if ids.shape[1] < tokens + 1:
        raise ValueError(f"the book has {ids.shape[1]} tokens, {tokens + 1} asked")
    return ids[:, : tokens + 1]


def kv_bytes(cache: Any) -> int:
    """Bytes of keys and values a transformers cache holds."""
    if hasattr(cache, "nbytes"):
        return int(cache.nbytes())
    return sum(t.numel() * t.element_size() for lay in cache.layers
               for t in (lay.keys, lay.values) if t is not None)


def decode(model: Any, ids: torch.Tensor, cache: Any, desc: str) -> dict[str, list[float]]:
    """Feed ``ids`` one token at a time; NLL of each next token, step seconds, KV bytes."""
    nll: list[float] = []
    sec: list[float] = []
    mem: list[float] = []
    tok = ids[:, :1]
    with torch.inference_mode():
        for i in tqdm(range(ids.shape[1] - 1), desc=desc, mininterval=5):
            t0 = time.perf_counter()
            logits = model(input_ids=tok, past_key_values=cache, use_cache=True).logits[0, -1]
            sec.append(time.perf_counter() - t0)
            tok = ids[:, i + 1 : i + 2]
            nll.append(float(torch.log_softmax(logits.float(), -1)[tok[0, 0]].neg()))
            mem.append(float(kv_bytes(cache)))
    return {"nll": nll, "sec": sec, "kv_bytes": mem}


def recompute(model: Any, ids: torch.Tensor, window: int, start: int, tokens: int
              ) -> dict[str, list[float]]:
    """Sliding window with recompute: each token re-runs its last ``window`` tokens."""
    nll, sec = [], []
    with torch.inference_mode():
        for i in tqdm(range(start, start + tokens), desc="recompute", mininterval=5):
            ctx = ids[:, max(0, i + 1 - window) : i + 1]
            t0 = time.perf_counter()
            logits = model(input_ids=ctx, use_cache=False).logits[0, -1]
            sec.append(time.perf_counter() - t0)
            nll.append(float(torch.log_softmax(logits.float(), -1)[ids[0, i + 1]].neg()))
    return {"nll": nll, "sec": sec}


def ppl(nll: list[float], lo: int, hi: int) -> float:
    """Perplexity over next-token predictions ``lo .. hi-1``."""
    part = nll[lo:hi]
    return math.exp(sum(part) / len(part)) if part else float("nan")


def buckets(curve: dict[str, list[float]], size: int) -> dict[str, list[float]]:
    """Per ``size`` tokens: perplexity, median ms per token, KV MiB at the bucket's end."""
    n = len(curve["nll"]) // size
    out: dict[str, list[float]] = {"token": [], "ppl": [], "ms_p50": [], "kv_mib": []}
    for b in range(n):
        sl = slice(b * size, (b + 1) * size)
        out["token"].append((b + 1) * size)
        out["ppl"].append(math.exp(float(np.mean(curve["nll"][sl]))))
        out["ms_p50"].append(float(np.median(curve["sec"][sl]) * 1e3))
        if "kv_bytes" in curve:
            out["kv_mib"].append(curve["kv_bytes"][(b + 1) * size - 1] / 2**20)
    return out


def run_llm_bench(out_dir: str, gguf: str | None = None, tokens: int = 20_000,
                  full_tokens: int = 4096, window_tokens: int = 4096, window: int = 1024,
                  recompute_tokens: int = 64, bucket: int = 256, threads: int = 2
                  ) -> dict[str, Any]:
    from streamwise.hf import StreamingCache
    from streamwise.hf.gguf import find_smollm2, load_gguf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    path = Path(gguf) if gguf else find_smollm2()
    t0 = time.perf_counter()
    model, tok = load_gguf(path)
    load_s = time.perf_counter() - t0
    from transformers import DynamicCache

    ids = book_ids(tok, max(tokens, full_tokens, window_tokens, window + recompute_tokens))
    runs: dict[str, dict[str, list[float]]] = {}
    runs["sinks"] = decode(model, ids[:, : tokens + 1],
                           StreamingCache(model, Sinks(4, window - 4)), "sinks 4+window")
    runs["window"] = decode(model, ids[:, : window_tokens + 1],
                            StreamingCache(model, Window(window)), "window only")
    runs["full"] = decode(model, ids[:, : full_tokens + 1], DynamicCache(config=model.config),
                          "full cache")
    runs["recompute"] = recompute(model, ids, window, window, recompute_tokens)
    result: dict[str, Any] = {
        "model": path.name, "params": sum(p.numel() for p in model.parameters()),
        "load_seconds": load_s, "threads": threads, "window": window, "bucket": bucket,
        "curves": {k: buckets(v, bucket) for k, v in runs.items() if k != "recompute"},
        "table": {}, "os_cpu_count": os.cpu_count(),
    }
    lo, hi = window, min(full_tokens, window_tokens)
    table = result["table"]
    table["ppl_range"] = [lo, hi]
    for k in ("full", "window", "sinks"):
        table[f"ppl_{k}"] = ppl(runs[k]["nll"], lo, hi)
    table["ppl_sinks_over_full"] = table["ppl_sinks"] / table["ppl_full"]
    table["ppl_window_over_full"] = table["ppl_window"] / table["ppl_full"]
    table["ppl_sinks_to_end"] = ppl(runs["sinks"]["nll"], lo, tokens)
    rec_ms = float(np.median(runs["recompute"]["sec"]) * 1e3)
    sink_ms = float(np.median(runs["sinks"]["sec"][window : window + 2000]) * 1e3)
    table["recompute_ms_per_token"], table["sinks_ms_per_token"] = rec_ms, sink_ms
    table["sinks_speedup_over_recompute"] = rec_ms / sink_ms
    table["ppl_recompute"] = ppl(runs["recompute"]["nll"], 0, recompute_tokens)
    table["ppl_sinks_same_tokens"] = ppl(runs["sinks"]["nll"], window, window + recompute_tokens)
    flat = flatness(result["curves"]["sinks"], "kv_mib")  # from token 1k
    table["sinks_latency_max_over_min_1k_to_end"] = flat["latency_max_over_min"]
    table["sinks_latency_last_over_first_tenth"] = flat["latency_last_over_first"]
    table["sinks_kv_end_over_1k"] = flat["state_end_over_start"]
    full = result["curves"]["full"]
    table["full_kv_mib_at_end"] = full["kv_mib"][-1]
    table["full_ms_growth"] = full["ms_p50"][-1] / full["ms_p50"][0]

    def plot(p: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 3, figsize=(16, 4.2))
        for k, cur in result["curves"].items():
            ax[0].plot(cur["token"], cur["ppl"], label=k)
            ax[1].plot(cur["token"], cur["ms_p50"], label=k)
            ax[2].plot(cur["token"], cur["kv_mib"], label=k)
        ax[1].axhline(rec_ms, color="k", ls=":", label=f"recompute {window}")
        ax[0].set(xlabel="token", ylabel=f"perplexity per {bucket} tokens", yscale="log",
                  title=f"SmolLM2-135M on Pride and Prejudice, cache {window}")
        ax[1].set(xlabel="token", ylabel="median ms per token", yscale="log")
        ax[2].set(xlabel="token", ylabel="KV cache MiB")
        for a in ax:
            a.legend()
        fig.tight_layout()
        fig.savefig(p, dpi=110)

    rows = [f"perplexity over tokens {lo}..{hi} (cache {window}):",
            f"  full {table['ppl_full']:.2f} | window only {table['ppl_window']:.2f} | "
            f"sinks 4+{window - 4} {table['ppl_sinks']:.2f} "
            f"(sinks/full {table['ppl_sinks_over_full']:.3f})",
            f"sinks perplexity over tokens {lo}..{tokens}: {table['ppl_sinks_to_end']:.2f}",
            f"per token: recompute {rec_ms:.1f} ms vs sinks {sink_ms:.1f} ms -> "
            f"{table['sinks_speedup_over_recompute']:.1f}x",
            f"sinks from 1k to {tokens}: latency last/first tenth "
            f"{table['sinks_latency_last_over_first_tenth']:.3f} (bucket max/min "
            f"{table['sinks_latency_max_over_min_1k_to_end']:.3f}), "
            f"KV end/1k {table['sinks_kv_end_over_1k']:.3f}"]
    write_report(out, "llm", result, plot, "\n".join(rows))
    return result
