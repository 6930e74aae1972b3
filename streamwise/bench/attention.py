"""``streamwise bench attention``: per-token latency and state size of streaming attention over
100k tokens, one policy per curve.

A tiny decoder (``layers`` blocks of StreamingAttention + MLP, random weights, float32) reads
random token embeddings one token per ``step``.  Per 1k-token bucket it records the median step
latency and the state bytes; "flat" is judged from token 1k to the end: the median latency of the
last tenth over the first tenth (robust to bursts of load from other processes), the max/min of the
bucket medians (not), and the state at the end over the state at 1k.  JSON + PNG.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import streamwise as sw
from streamwise.attention import CachePolicy, LinearAbsorb, Retrieve, Sinks, Window
from streamwise.bench.report import flatness, write_report
from streamwise.core.protocol import tree_nbytes


def tiny_decoder(policy: Callable[[], CachePolicy], dim: int, heads: int, layers: int
                 ) -> sw.Sequential:
    """``layers`` pre-norm blocks (attention, MLP) on ``[B, dim, T]``."""
    blocks: list[Any] = []
    for _ in range(layers):
        attn = sw.StreamingAttention(dim, heads, kv_heads=max(1, heads // 2), layout="bct",
                                     cache=policy())
        blocks += [sw.Residual(sw.Sequential(sw.LayerNorm(dim), attn)),
                   sw.Residual(sw.Sequential(sw.LayerNorm(dim), sw.Linear(dim, 4 * dim),
                                             sw.GELU(), sw.Linear(4 * dim, dim)))]
    return sw.Sequential(*blocks)


POLICIES: dict[str, Callable[[], CachePolicy]] = {
    "sinks 4+252": lambda: Sinks(4, 252),
    "window 256": lambda: Window(256),
    "linear absorb 256": lambda: LinearAbsorb(256),
    "retrieve k=2 (64 pages)": lambda: Retrieve(2, page=16, window=252, max_pages=64),
}


def measure(model: sw.Sequential, tokens: int, dim: int, bucket: int, seed: int
            ) -> dict[str, list[float]]:
    """Step ``tokens`` single tokens; median latency (ms) and state bytes per bucket."""
    gen = torch.Generator().manual_seed(seed)
    state = model.init_state(1)
    lat = np.zeros(bucket)
    out: dict[str, list[float]] = {"token": [], "ms_p50": [], "state_bytes": []}
    with torch.inference_mode():
        for i in tqdm(range(tokens), desc="tokens", leave=False, mininterval=2):
            x = torch.randn(1, dim, 1, generator=gen)
            t0 = time.perf_counter()
            _, state = model.step(x, state)
            lat[i % bucket] = time.perf_counter() - t0
            if i % bucket == bucket - 1:
                out["token"].append(i + 1)
                out["ms_p50"].append(float(np.median(lat) * 1e3))
                out["state_bytes"].append(tree_nbytes(state))
    return out


def run_attention_bench(out_dir: str, tokens: int = 100_000, dim: int = 64, heads: int = 4,
                        layers: int = 2, bucket: int = 1000, seed: int = 0) -> dict[str, Any]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    result: dict[str, Any] = {"tokens": tokens, "dim": dim, "heads": heads, "layers": layers,
                              "bucket": bucket, "torch_threads": 1, "policies": {}}
    for name, make in POLICIES.items():
        torch.manual_seed(seed)
        model = tiny_decoder(make, dim, heads, layers).eval()
        curve = measure(model, tokens, dim, bucket, seed)
        flat = flatness(curve, "state_bytes")
        result["policies"][name] = {**curve, **flat}
        print(f"{name}: {flat}")

    def plot(path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for name, c in result["policies"].items():
            ax[0].plot(c["token"], c["ms_p50"], label=name)
            ax[1].plot(c["token"], np.asarray(c["state_bytes"]) / 1024, label=name)
        ax[0].set(xlabel="token", ylabel="median ms per token (1k buckets)",
                  title=f"{layers}-layer tiny decoder, 1 thread")
        ax[1].set(xlabel="token", ylabel="state KiB", title="state size")
        for a in ax:
            a.set_xscale("log")
            a.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=110)

    rows = ["| policy | latency last/first tenth | bucket max/min | state end/1k | ms/token at "
            "end | state KiB |", "|---|---:|---:|---:|---:|---:|"]
    for name, c in result["policies"].items():
        rows.append(f"| {name} | {c['latency_last_over_first']:.3f} | "
                    f"{c['latency_max_over_min']:.3f} | "
                    f"{c['state_end_over_start']:.3f} | {c['ms_p50'][-1]:.3f} | "
                    f"{c['state_bytes'][-1] / 1024:.1f} |")
    write_report(out, "attention", result, plot, "\n".join(rows))
    return result
