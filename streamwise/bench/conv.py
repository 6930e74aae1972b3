"""``streamwise bench conv``: one run, same model, weights and input, four ways to stream it.

- ``streamwise``: pure ``step`` through ``Stream.push``;
- ``window``: recompute the offline model on overlapping windows that cover the receptive field
  (the naive baseline) and keep only the outputs that are final, i.e. the same outputs;
- ``cached_conv``: cached_conv 2.5.0 with the same architecture and weights (chunks must be
  multiples of the model's total stride, so chunk sizes it cannot take are reported as such);
- ``offline``: ``forward`` on the whole signal, the compute floor.

Each method at each chunk size runs in several rounds that interleave the methods (a shared
machine's drift hits all of them alike), each round up to a time budget; throughput is samples per
second over what it processed (median over rounds), so ratios compare like with like.  Outputs are
checked against the offline forward.  Results go to ``conv.json`` and ``conv.png``.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from streamwise.assets import speech
from streamwise.bench.report import write_report
from streamwise.core.protocol import StreamingModule, ceil_frac
from streamwise.models.seanet import denoiser

CHUNKS = (1, 16, 160, 1600)


class WindowRecompute:
    """The naive way to stream: rerun ``forward`` on a window covering the receptive field.

    Windows start on multiples of the model's period (so strided layers keep their phase) and
    reach back one receptive field, rounded up, before the first output still to emit; only the
    outputs whose lookahead has arrived are kept, so it emits what streaming emits.
    """

    def __init__(self, model: StreamingModule) -> None:
        self.model = model
        p = model.period
        self.period = p
        self.left = -(-model.receptive_field // p) * p + p  # context, aligned to the phase
        self.lookahead = ceil_frac(model.delay)
        self.stride = model.stride
        self.history: Tensor | None = None
        self.hist_start = 0  # absolute input index of history[..., 0]
        self.t = 0
        self.emitted = 0  # output frames emitted

    def _final(self) -> int:
        """Output frames computable from the inputs so far (their lookahead has arrived)."""
        last = self.t - 1 - self.lookahead  # the latest input frame an output may sit on
        return 0 if last < 0 else int(last * self.stride) + 1

    def push(self, x: Tensor) -> Tensor:
        self.history = x if self.history is None else torch.cat([self.history, x], -1)
        self.t += x.shape[-1]
        final = self._final()
        if final <= self.emitted:
            ch = self.model.channels_out(x.shape[1]) or x.shape[1]
            return x.new_empty(x.shape[0], ch, 0)
        first_input = int(self.emitted / self.stride)  # input time of the first output to emit
        ws = max(0, (first_input - self.left) // self.period * self.period)
        y = self.model(self.history[..., ws - self.hist_start :])
        offset = int(ws * self.stride)  # ws is a multiple of the period: a whole output index
        out = y[..., self.emitted - offset : final - offset]
        self.emitted = final
        keep_from = max(0, (int(final / self.stride) - self.left) // self.period * self.period)
        self.history = self.history[..., keep_from - self.hist_start :]
        self.hist_start = keep_from
        return out

    @property
    def window_frames(self) -> int:
        return self.left + self.lookahead


def _timed_pushes(
    push: Callable[[Tensor], Tensor], x: Tensor, chunk: int, budget_s: float
) -> tuple[Tensor, np.ndarray, int]:
    """Push chunks until the signal or the time budget runs out."""
    outs, times, pos, t_start = [], [], 0, time.perf_counter()
    while pos < x.shape[-1] and time.perf_counter() - t_start < budget_s:
        t0 = time.perf_counter()
        outs.append(push(x[..., pos : pos + chunk]))
        times.append(time.perf_counter() - t0)
        pos += chunk
    return torch.cat(outs, -1), np.asarray(times), pos


def _merge_rounds(
    method: str, chunk: int, rounds: list[tuple[np.ndarray, int, float]]
) -> dict[str, Any]:
    """One row per method and chunk: median throughput over rounds, pooled latencies."""
    sps = [done / float(times.sum()) for times, done, _ in rounds]
    times = np.concatenate([t for t, _, _ in rounds])
    return {
        "method": method,
        "chunk": chunk,
        "samples": int(sum(done for _, done, _ in rounds)),
        "rounds": len(rounds),
        "throughput_sps": float(np.median(sps)),
        "throughput_sps_rounds": sps,
        "latency_ms_p50": float(np.percentile(times, 50) * 1e3),
        "latency_ms_p99": float(np.percentile(times, 99) * 1e3),
        "max_abs_error": max(err for _, _, err in rounds),
    }


def _error(y: Tensor, ref: Tensor, shift: int = 0, skip: int = 0) -> float:
    n = min(y.shape[-1] - shift, ref.shape[-1])
    if n <= skip:
        return float("nan")
    return float((y[..., shift + skip : shift + n] - ref[..., skip:n]).abs().max())


def run_conv_bench(
    out_dir: str | Path = "bench-results",
    seconds: float = 4.0,
    budget_s: float = 8.0,
    chunks: tuple[int, ...] = CHUNKS,
    threads: int = 1,
    rounds: int = 3,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and write ``conv.json`` and ``conv.png`` into ``out_dir``."""
    from streamwise.bench.cached_conv_port import port

    torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = denoiser()
    audio, rate = speech()
    n = int(seconds * rate) // model.period * model.period
    x = audio[None, :, :n]
    with torch.inference_mode():
        ref = model(x)
    methods: dict[str, Callable[[], Callable[[Tensor], Tensor]]] = {
        "streamwise": lambda: model.stream().push,
        "window": lambda: WindowRecompute(model).push,
        "cached_conv": lambda: port(model)[0].eval(),
    }
    rows: list[dict[str, Any]] = []
    offline: list[float] = []
    jobs = [(c, r) for c in chunks for r in range(rounds)]
    # rounds interleave the methods, so drifts of a shared machine hit all of them alike
    runs: dict[tuple[str, int], list[tuple[np.ndarray, int, float]]] = {}
    for chunk, _ in tqdm(jobs, desc="bench conv", disable=not progress):
        with torch.inference_mode():
            t0 = time.perf_counter()
            model(x)
            offline.append(time.perf_counter() - t0)
            for method, make in methods.items():
                if method == "cached_conv" and chunk % model.period:
                    continue
                y, times, done = _timed_pushes(make(), x, chunk, budget_s / rounds)
                if method == "cached_conv":
                    # cached_conv starts from zero caches: compare past its start-up transient
                    delay = port(model)[1]
                    err = _error(y, ref, shift=delay, skip=model.receptive_field)
                else:
                    err = _error(y, ref)
                runs.setdefault((method, chunk), []).append((times, done, err))
    for (method, chunk), rs in runs.items():
        rows.append(_merge_rounds(method, chunk, rs))
    for chunk in chunks:
        if chunk % model.period:
            rows.append({"method": "cached_conv", "chunk": chunk, "samples": 0,
                         "skipped": f"chunk must be a multiple of the total stride {model.period}"})
    offline_sps = n / float(np.median(offline))
    result = {
        "model": "SEANet-like denoiser (the demo model, trained weights)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "delay_frames": float(model.delay),
        "receptive_field": model.receptive_field,
        "window_frames": WindowRecompute(model).window_frames,
        "signal_samples": n,
        "threads": threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "offline": {"throughput_sps": offline_sps, "seconds_median": float(np.median(offline))},
        "rows": rows,
        "ratios": _ratios(rows, offline_sps),
    }
    write_report(out, "conv", result, lambda p: _plot(p, result), format_table(result))
    return result


def _ratios(rows: list[dict[str, Any]], offline_sps: float) -> dict[str, dict[str, float]]:
    """Per chunk size: streamwise speed relative to each other method (>1: streamwise faster)."""
    by = {(r["method"], r["chunk"]): r for r in rows if r.get("samples")}
    out: dict[str, dict[str, float]] = {}
    for (method, chunk), r in by.items():
        if method != "streamwise":
            continue
        sw = r["throughput_sps"]
        entry = {"offline_over_streamwise_time": sw and offline_sps / sw}
        for other in ("window", "cached_conv"):
            if (other, chunk) in by:
                entry[f"streamwise_over_{other}_speed"] = sw / by[(other, chunk)]["throughput_sps"]
        out[str(chunk)] = entry
    return out


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of throughput (samples/s), latency and ratios per chunk size."""
    rows = {(r["method"], r["chunk"]): r for r in result["rows"]}
    chunks = sorted({r["chunk"] for r in result["rows"]})
    lines = [
        "| chunk | streamwise (samples/s) | window recompute | cached_conv | streamwise p50 / p99 "
        "latency (ms) | vs window | vs cached_conv | time vs offline |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in chunks:
        s, w, cc = rows[("streamwise", c)], rows[("window", c)], rows[("cached_conv", c)]
        ratio = result["ratios"].get(str(c), {})
        cc_txt = f"{cc['throughput_sps']:,.0f}" if cc.get("samples") else "n/a (stride)"
        vs_cc = ratio.get("streamwise_over_cached_conv_speed")
        lines.append(
            f"| {c} | {s['throughput_sps']:,.0f} | {w['throughput_sps']:,.0f} | {cc_txt} | "
            f"{s['latency_ms_p50']:.3f} / {s['latency_ms_p99']:.3f} | "
            f"{ratio['streamwise_over_window_speed']:.1f}x | "
            f"{f'{vs_cc:.2f}x' if vs_cc else 'n/a'} | "
            f"{ratio['offline_over_streamwise_time']:.2f}x |"
        )
    lines.append(f"\noffline forward: {result['offline']['throughput_sps']:,.0f} samples/s; "
                 f"window = {result['window_frames']} frames of context + lookahead per recompute")
    return "\n".join(lines)


def _plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for method, color in (("streamwise", "C0"), ("window", "C3"), ("cached_conv", "C2")):
        pts = [(r["chunk"], r) for r in result["rows"]
               if r["method"] == method and r.get("samples")]
        if not pts:
            continue
        cs = [c for c, _ in pts]
        ax[0].loglog(cs, [r["throughput_sps"] for _, r in pts], "o-", color=color, label=method)
        ax[1].loglog(cs, [r["latency_ms_p50"] for _, r in pts], "o-", color=color, label=method)
    ax[0].axhline(result["offline"]["throughput_sps"], color="k", ls=":", label="offline forward")
    ax[0].set_xlabel("chunk size (samples)")
    ax[0].set_ylabel("throughput (samples/s)")
    ax[0].set_title("throughput (higher is better)")
    ax[0].legend()
    ax[1].set_xlabel("chunk size (samples)")
    ax[1].set_ylabel("p50 time per chunk (ms)")
    ax[1].set_title("latency per chunk (lower is better)")
    ax[1].legend()
    fig.suptitle(f"{result['model']}, {result['parameters'] / 1e6:.2f} M params, "
                 f"{result['threads']} thread(s)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
