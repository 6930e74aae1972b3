"""``streamwise bench delta``: does temporal sparsity turn into speed on this CPU?

Real streaming input: log-spectral features (64 bands, 10 ms hop) of the shipped speech
recording, normalised per band.  A pointwise MLP (1x1 layers, the kind a keyword spotter or
denoiser runs per frame) is streamed frame by frame, dense and as delta layers at several
thresholds.  For each threshold: the fraction of input changes transmitted (the share of
multiply-accumulates still done), the wall-clock time per frame against the dense stack measured
in the same run, and the output error against the dense stack.  JSON + PNG.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import streamwise as sw
from streamwise.assets import speech
from streamwise.bench.report import write_report
from streamwise.layers.delta import sparsity

THRESHOLDS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


def speech_features(bands: int = 64, hop: int = 160, win: int = 400) -> Tensor:
    """``[1, bands, frames]`` log band energies of the shipped speech, zero mean, unit variance."""
    audio, _ = speech()
    frames = audio[0].unfold(0, win, hop) * torch.hann_window(win)
    power = torch.fft.rfft(frames).abs().pow(2)  # [frames, win/2+1]
    edges = torch.linspace(0, power.shape[1], bands + 1).long()
    energy = torch.stack([power[:, a:b].mean(1) for a, b in zip(edges[:-1], edges[1:])], 0)
    feats = torch.log(energy + 1e-8)
    feats = (feats - feats.mean(1, keepdim=True)) / feats.std(1, keepdim=True)
    return feats[None].float()


def mlp(width: int, bands: int = 64, seed: int = 0) -> sw.Sequential:
    torch.manual_seed(seed)
    return sw.Sequential(sw.Linear(bands, width), sw.ReLU(), sw.Linear(width, width), sw.ReLU(),
                         sw.Linear(width, bands)).eval()


def _per_frame(model: sw.StreamingModule, x: Tensor, repeats: int) -> tuple[float, Tensor, Any]:
    """Median seconds per frame over ``repeats`` passes, frame by frame; output and state."""
    best, out, state = [], None, None
    with torch.inference_mode():
        for _ in range(repeats):
            s = model.stream()
            ys = []
            t0 = time.perf_counter()
            for t in range(x.shape[-1]):
                ys.append(s.push(x[..., t : t + 1]))
            best.append((time.perf_counter() - t0) / x.shape[-1])
            out, state = torch.cat(ys, -1), s.state
    return float(np.median(best)), out, state  # type: ignore[return-value]


def run_delta_bench(
    out_dir: str | Path = "bench-results", widths: tuple[int, ...] = (256, 1024, 2048),
    thresholds: tuple[float, ...] = THRESHOLDS, repeats: int = 3,
) -> dict[str, Any]:
    """Run the sweep; write ``delta.json`` and ``delta.png``."""
    torch.set_num_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = speech_features()
    rows = []
    for width in widths:
        dense = mlp(width)
        for thr in thresholds:
            delta = sw.delta_pointwise(dense, thr)
            # dense and delta alternate, so a noisy machine slows both alike
            t_dense, ref, _ = _per_frame(dense, x, repeats)
            t_delta, y, state = _per_frame(delta, x, repeats)
            sent, total = sparsity(state)
            rel = float((y - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
            rows.append({
                "width": width, "threshold": thr, "transmitted": sent / total,
                "dense_us_per_frame": t_dense * 1e6, "delta_us_per_frame": t_delta * 1e6,
                "speedup": t_dense / t_delta, "relative_rms_error": rel,
                "max_abs_error": float((y - ref).abs().max()),
            })
    result = {"input": f"shipped speech, {x.shape[1]} log bands x {x.shape[-1]} frames of 10 ms",
              "model": "Linear-ReLU-Linear-ReLU-Linear (1x1), frame by frame, 1 thread",
              "rows": rows}
    write_report(out, "delta", result, lambda p: _plot(p, rows), format_delta_table(result))
    return result


def format_delta_table(result: dict[str, Any]) -> str:
    lines = ["| width | threshold | MACs done | dense us/frame | delta us/frame | speedup | "
             "relative RMS error |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['width']} | {r['threshold']:g} | {100 * r['transmitted']:.1f}% | "
            f"{r['dense_us_per_frame']:.0f} | {r['delta_us_per_frame']:.0f} | "
            f"{r['speedup']:.2f}x | {r['relative_rms_error']:.3f} |")
    return "\n".join(lines)


def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for width in sorted({r["width"] for r in rows}):
        rs = [r for r in rows if r["width"] == width]
        ax[0].plot([100 * r["transmitted"] for r in rs], [r["speedup"] for r in rs], "o-",
                   label=f"width {width}")
        ax[1].plot([100 * r["transmitted"] for r in rs], [r["relative_rms_error"] for r in rs],
                   "o-", label=f"width {width}")
    ax[0].axhline(1.0, color="k", ls=":")
    ax[0].set_xlabel("multiply-accumulates done (% of dense)")
    ax[0].set_ylabel("wall-clock speedup over dense")
    ax[0].set_title("sparsity -> speed?")
    ax[1].set_xlabel("multiply-accumulates done (% of dense)")
    ax[1].set_ylabel("relative RMS error vs dense")
    ax[1].set_title("accuracy cost")
    for a in ax:
        a.invert_xaxis()
        a.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
