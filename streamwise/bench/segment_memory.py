"""``streamwise bench segment-memory``: Think While Watching's overlapped watching and thinking.

The watched stream is real text: each sentence of Pride and Prejudice is a segment, each word a
frame (a hashed embedding), so segments have the book's own, varying lengths.  After a segment
ends the model writes ``notes`` tokens about it; overlapped, they go into the same step calls as
the next segment's words (one word and one note per call) and ``SegmentMemory`` keeps the notes
blind to the words that already arrived.  Interleaved (the usual paradigm), the words wait while
the notes are written.  Measured per variant on a 2-layer attention stack with random weights:
cache entries over the stream, step calls, the words' ingestion lag (calls a word waits), ms per
call; and for ``SegmentMemory`` the streamed-vs-offline error on the first segments, and a
check that with nothing dropped and no overlap its mask is plain causal attention.  Writes
``segment_memory.json`` / ``.png``.
"""

from __future__ import annotations

import re
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.attention import CachePolicy, Full, SegmentMemory, StreamingAttention
from streamwise.bench.report import write_report
from streamwise.core.data_paths import shared_data


def sentences(n: int, skip: int = 40) -> list[list[str]]:
    """``n`` sentences of Pride and Prejudice as word lists (after ``skip`` front-matter ones)."""
    path = shared_data() / "text" / "pride_and_prejudice.txt"
    if not path.exists():
        raise FileNotFoundError(f"expected the shipped text at {path}")
    text = re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))
    out = [s.split() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 2]
    return out[skip : skip + n]


def embed(word: str, dim: int) -> torch.Tensor:
    """A fixed random vector per word (crc32-seeded: the same in every run)."""
    gen = torch.Generator().manual_seed(zlib.crc32(word.lower().encode()))
    return torch.randn(dim, generator=gen) / dim**0.5


def overlapped(segments: list[list[str]], notes: int) -> list[list[tuple[str, str]]]:
    """Step calls of (name, word) entries: each call takes the next word of the segment being
    watched and the next note about the segment before it (notes of the last segment follow)."""
    calls: list[list[tuple[str, str]]] = []
    pending: list[tuple[str, str]] = []
    for words in segments:
        frames = [("watch", w) for w in words[:-1]] + [("watch_end", words[-1])]
        for i in range(max(len(frames), len(pending))):
            calls.append(([frames[i]] if i < len(frames) else [])
                         + ([pending[i]] if i < len(pending) else []))
        pending = [("think", f"#note{j}") for j in range(notes - 1)] + [("think_end", "#end")]
    return calls + [[p] for p in pending]


def interleaved(segments: list[list[str]], notes: int) -> list[list[tuple[str, str]]]:
    """One entry per call; the words of a segment wait until the notes before them are written."""
    calls: list[list[tuple[str, str]]] = []
    for words in segments:
        calls += [[("watch", w)] for w in words[:-1]] + [[("watch_end", words[-1])]]
        calls += [[("think", f"#note{j}")] for j in range(notes - 1)] + [[("think_end", "#e")]]
    return calls


def ingestion_lag(segments: list[list[str]], calls: list[list[tuple[str, str]]]) -> float:
    """Mean calls a word waits past its arrival, words arriving one per call from call 0."""
    arrival = [i for i, _ in enumerate(w for s in segments for w in s)]
    taken = [c for c, call in enumerate(calls) for n, _ in call if n.startswith("watch")]
    return float(np.mean(np.asarray(taken) - np.asarray(arrival)))


def stack(policy: CachePolicy, dim: int, layers: int) -> list[StreamingAttention]:
    torch.manual_seed(0)
    return [StreamingAttention(dim, 4, cache=policy).eval() for _ in range(layers)]


def run_calls(blocks: list[StreamingAttention], calls: list[list[tuple[str, str]]], dim: int,
              progress: bool = False) -> dict[str, Any]:
    """Step every call through the residual stack; entries (layer 0) and ms per call."""
    states = [b.init_state(1) for b in blocks]
    entries, ms, outs = [], [], []
    with torch.inference_mode():
        for call in tqdm(calls, desc="calls", leave=False, disable=not progress, mininterval=2):
            x = torch.stack([embed(w, dim) for _, w in call])[None] if call else \
                torch.zeros(1, 0, dim)
            names = [n for n, _ in call]
            t0 = time.perf_counter()
            for i, b in enumerate(blocks):
                y, states[i] = b.step(x, states[i], segment=names)
                x = x + y
            ms.append((time.perf_counter() - t0) * 1e3)
            entries.append(int(states[0]["cache"]["pos"].shape[1]))
            outs.append(x)
    return {"entries": entries, "ms": ms, "out": torch.cat(outs, 1)}


def offline(blocks: list[StreamingAttention], calls: list[list[tuple[str, str]]], dim: int
            ) -> torch.Tensor:
    flat = [e for call in calls for e in call]
    x = torch.stack([embed(w, dim) for _, w in flat])[None]
    with torch.inference_mode():
        for b in blocks:
            x = x + b(x, segment=[n for n, _ in flat])
    return x


def run(out: Path, sentences_n: int = 200, notes: int = 4, watch: int = 1, memory: int = 8,
        dim: int = 64, layers: int = 2, progress: bool = True) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    segs = sentences(sentences_n)
    plans = {"overlapped": overlapped(segs, notes), "interleaved": interleaved(segs, notes)}
    result: dict[str, Any] = {"sentences": len(segs), "words": sum(map(len, segs)),
                              "notes_per_segment": notes, "watch": watch, "memory": memory,
                              "dim": dim, "layers": layers, "torch_threads": 1, "variants": {}}
    curves: dict[str, list[int]] = {}
    for plan, calls in plans.items():
        for cache in ("segment_memory", "full"):
            pol = SegmentMemory(watch, memory) if cache == "segment_memory" else \
                SegmentMemory(None, None)
            r = run_calls(stack(pol, dim, layers), calls, dim, progress)
            name = f"{plan}, {cache.replace('_', ' ')}"
            curves[name] = r["entries"]
            result["variants"][name] = {
                "calls": len(calls), "ingestion_lag_calls": ingestion_lag(segs, calls),
                "entries_max": max(r["entries"]), "entries_end": r["entries"][-1],
                "ms_per_call_p50": float(np.median(r["ms"]))}
    # exactness and blindness of the notes, on the first 40 segments (offline is quadratic)
    few = overlapped(segs[:40], notes)
    blocks = stack(SegmentMemory(watch, memory), dim, layers)
    streamed = run_calls(blocks, few, dim)["out"]
    ref = offline(blocks, few, dim)
    result["stream_vs_offline_max_abs"] = float((streamed - ref).abs().max())
    result["full_mask_is_causal"] = _full_is_causal(segs[:10], notes, dim)
    result["variants_note"] = ("'full' = SegmentMemory(None, None): the segment mask, nothing "
                               "dropped")

    def plot(path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for name, c in curves.items():
            ax[0].plot(c, label=name)
        ax[0].set(xlabel="step call", ylabel="cache entries (layer 0)", yscale="log",
                  title=f"{len(segs)} sentences of Pride and Prejudice, {notes} notes each")
        ax[0].legend(fontsize=8)
        names = list(result["variants"])
        ax[1].bar(range(len(names)), [result["variants"][n]["ingestion_lag_calls"]
                                      for n in names])
        ax[1].set_xticks(range(len(names)), [n.replace(", ", "\n") for n in names], fontsize=8)
        ax[1].set(ylabel="mean calls a word waits", title="ingestion lag")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    rows = ["| variant | step calls | word ingestion lag (calls) | cache entries max / end | "
            "ms per call (p50) |", "|---|---:|---:|---:|---:|"]
    for name, v in result["variants"].items():
        rows.append(f"| {name} | {v['calls']} | {v['ingestion_lag_calls']:.1f} | "
                    f"{v['entries_max']} / {v['entries_end']} | {v['ms_per_call_p50']:.2f} |")
    rows.append(f"\nstreamed vs offline (first 40 segments): max abs "
                f"{result['stream_vs_offline_max_abs']:.1e}")
    write_report(out, "segment_memory", result, plot, "\n".join(rows))
    return result


def _full_is_causal(segs: list[list[str]], notes: int, dim: int) -> bool:
    """With nothing dropped and no overlap, the segment mask is plain causal attention."""
    calls = interleaved(segs, notes)
    a = stack(SegmentMemory(None, None), dim, 1)
    b = stack(Full(), dim, 1)
    b[0].load_state_dict(a[0].state_dict())
    flat = [e for call in calls for e in call]
    x = torch.stack([embed(w, dim) for _, w in flat])[None]
    with torch.inference_mode():
        return bool(torch.allclose(a[0](x, segment=[n for n, _ in flat]), b[0](x), atol=1e-6))
