"""``streamwise bench conv``: one run, same model, weights and input, every way to stream it.

- ``streamwise``: pure ``step`` through ``Stream.push``;
- ``onnx`` / ``executorch``: the model exported once per chunk size (before the rounds) and
  driven by ``runtime.OnnxStream``; chunks that are not a multiple of the period are buffered
  into the smallest exportable chunk (see ``conv_exported``), refusals are skipped rows;
- ``window``: recompute the offline model on overlapping windows that cover the receptive field
  (the naive baseline) and keep only the outputs that are final, i.e. the same outputs;
- ``cached_conv``: cached_conv 2.5.0 with the same architecture and weights (chunks must be
  multiples of the model's total stride, so other chunk sizes are buffered to one), and its
  TorchScript (``cached_conv_torchscript``) where it scripts;
- ``offline``: ``forward`` on the whole signal, the compute floor.

Each method at each chunk size runs in several rounds that interleave the methods (a shared
machine's drift hits all of them alike), each round up to a time budget; throughput is samples per
second over what it processed (median over rounds), so ratios compare like with like.  Outputs are
checked against the offline forward; every method runs on the same thread count.  Results go
to ``conv.json`` and ``conv.png``.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from streamwise.assets import speech
from streamwise.bench.conv_exported import (
    RUNTIMES,
    STREAMWISE,
    Buffered,
    ExportedRows,
    export_chunk,
    targets,
    torchscript_cached_conv,
)
from streamwise.bench.report import write_report
from streamwise.core.protocol import StreamingModule, ceil_frac
from streamwise.models.seanet import denoiser

CHUNKS = (1, 2, 16, 160, 1600)


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
    model: StreamingModule | None = None,
    runtimes: tuple[str, ...] = RUNTIMES,
) -> dict[str, Any]:
    """Run the benchmark and write ``conv.json`` and ``conv.png`` into ``out_dir``.

    ``model``: the model to stream (default: the trained SEANet-like denoiser); ``runtimes``:
    the export runtimes to include (each exported once per chunk size before the rounds)."""
    from streamwise.bench.cached_conv_port import port

    torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = (denoiser() if model is None else model).eval()
    audio, rate = speech()
    n = int(seconds * rate) // model.period * model.period
    x = audio[None, :, :n]
    with torch.inference_mode():
        ref = model(x)
    p = model.period
    exported = ExportedRows(model, chunks, threads, runtimes, progress)
    _, cc_delay = port(model)
    scripted, script_why = torchscript_cached_conv(port(model)[0].eval())

    def cached(script: bool) -> Callable[[], Callable[[Tensor], Tensor]]:
        def make() -> Callable[[Tensor], Tensor]:
            m = port(model)[0].eval()
            return torch.jit.script(m) if script else m
        return make

    skipped: dict[tuple[str, int], str] = {}

    def methods(chunk: int) -> dict[str, Callable[[], Callable[[Tensor], Tensor]]]:
        ms: dict[str, Callable[[], Callable[[Tensor], Tensor]]] = {
            "streamwise": lambda: model.stream().push}
        for rt in runtimes:
            make = exported.maker(rt, chunk)
            if make is None:
                skipped[(rt, chunk)] = str(exported.status(rt, chunk)[1])
            else:
                ms[rt] = make
        ms["window"] = lambda: WindowRecompute(model).push
        ms["cached_conv"] = cached(False)
        if scripted is not None:
            ms["cached_conv_torchscript"] = cached(True)
        else:
            skipped[("cached_conv_torchscript", chunk)] = f"does not script: {script_why}"
        return ms

    offline: list[float] = []
    jobs = [(c, r) for r in range(rounds) for c in chunks]
    # rounds interleave the methods, so drifts of a shared machine hit all of them alike
    runs: dict[tuple[str, int], list[tuple[np.ndarray, int, float]]] = {}
    for chunk, _ in tqdm(jobs, desc="bench conv", disable=not progress):
        with torch.inference_mode():
            t0 = time.perf_counter()
            model(x)
            offline.append(time.perf_counter() - t0)
            for method, make in methods(chunk).items():
                push = make()
                if method.startswith("cached_conv") and chunk % p:
                    push = Buffered(push, p)  # it takes multiples of the stride only
                y, times, done = _timed_pushes(push, x, chunk, budget_s / rounds)
                if method.startswith("cached_conv"):
                    # cached_conv starts from zero caches: compare past its start-up transient
                    err = _error(y, ref, shift=cc_delay, skip=model.receptive_field)
                else:
                    err = _error(y, ref)
                runs.setdefault((method, chunk), []).append((times, done, err))
    shutil.rmtree(exported.dir, ignore_errors=True)  # the exports are loaded; drop the files
    rows = [_merge_rounds(method, chunk, rs) for (method, chunk), rs in runs.items()]
    for r in rows:
        ec = export_chunk(p, r["chunk"])
        if r["method"] in runtimes and ec != r["chunk"]:
            r["buffered_to"] = ec  # pushes accumulate to the exported chunk
        if r["method"].startswith("cached_conv") and r["chunk"] % p:
            r["buffered_to"] = ec
    rows += [{"method": m, "chunk": c, "samples": 0, "skipped": why}
             for (m, c), why in skipped.items()]
    offline_sps = n / float(np.median(offline))
    result = {
        "model": "SEANet-like denoiser (the demo model, trained weights)",
        "parameters": sum(q.numel() for q in model.parameters()),
        "period": p,
        "delay_frames": float(model.delay),
        "receptive_field": model.receptive_field,
        "window_frames": WindowRecompute(model).window_frames,
        "signal_samples": n,
        "threads": threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "export_seconds": exported.export_s,
        "offline": {"throughput_sps": offline_sps, "seconds_median": float(np.median(offline))},
        "rows": rows,
        "ratios": _ratios(rows, offline_sps),
        "targets": targets(rows, offline_sps),
    }
    write_report(out, "conv", result, lambda q: _plot(q, result), format_table(result))
    return result


OTHERS = ("onnx", "executorch", "window", "cached_conv", "cached_conv_torchscript")


def _ratios(rows: list[dict[str, Any]], offline_sps: float) -> dict[str, dict[str, float]]:
    """Per chunk size: each method's speed over the others' (>1: the first one faster)."""
    by = {(r["method"], r["chunk"]): r for r in rows if r.get("samples")}
    out: dict[str, dict[str, float]] = {}
    for (method, chunk), r in by.items():
        if method not in STREAMWISE:
            continue
        sw = r["throughput_sps"]
        entry = out.setdefault(str(chunk), {})
        pre = "" if method == "streamwise" else f"{method}_"
        entry[f"offline_over_{method}_time"] = offline_sps / sw
        for other in OTHERS:
            if (other, chunk) in by and other != method and other not in STREAMWISE:
                entry[f"{pre}streamwise_over_{other}_speed"] = (
                    sw / by[(other, chunk)]["throughput_sps"])
    return out


def format_table(result: dict[str, Any]) -> str:
    """Markdown table: throughput (samples/s) per method and chunk, then the targets."""
    rows = {(r["method"], r["chunk"]): r for r in result["rows"]}
    chunks = sorted({r["chunk"] for r in result["rows"]})
    methods = [m for m in (*STREAMWISE, *OTHERS[2:]) if any(k[0] == m for k in rows)]
    lines = ["| chunk | " + " | ".join(methods) + " | offline |",
             "|---:|" + "---:|" * (len(methods) + 1)]
    off = result["offline"]["throughput_sps"]
    for c in chunks:
        cells = []
        for m in methods:
            r = rows.get((m, c))
            if r is None or not r.get("samples"):
                cells.append("skipped" if r is not None else "-")
            else:
                buf = f" (buffered to {r['buffered_to']})" if "buffered_to" in r else ""
                cells.append(f"{r['throughput_sps']:,.0f}{buf}")
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {off:,.0f} |")
    lines.append("\ntargets (fastest streamwise way per chunk):")
    for c, t in result["targets"].items():
        got = t.get("speed_over_cached_conv", t.get("time_over_offline"))
        what = "speed / cached_conv" if "speed_over_cached_conv" in t else "time / offline"
        lines.append(f"  chunk {c}: {t['best']} {what} = {got:.2f} (target {t['target']}): "
                     f"{'met' if t['met'] else 'NOT met'}")
    for (m, c), r in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if r.get("skipped"):
            lines.append(f"  skipped {m} at chunk {c}: {r['skipped']}")
    lines.append(f"window = {result['window_frames']} frames of context + lookahead per "
                 f"recompute; {result['threads']} thread(s) for every method")
    return "\n".join(lines)


def _plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for method, color in (("streamwise", "C0"), ("onnx", "C1"), ("executorch", "C4"),
                          ("window", "C3"), ("cached_conv", "C2"),
                          ("cached_conv_torchscript", "C5")):
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
