"""``streamwise bench seq``: the recurrent and sparse streaming layers on one real task.

Sequential digits: scikit-learn's bundled 8x8 handwritten digits (1797 real scans, no download),
read one pixel per frame (64 frames), with the frame's relative time as a second channel.  A
classifier sees the stream and answers at its last frame.  Small LMU, Aaren, LIF, GRU and
causal-conv models of similar size are trained on the same split with the same budget; each is
then run as a stream, one frame per push, to measure per-step latency and state size; the spiking
and delta models also report how sparse their activity is.  JSON + PNG.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

import streamwise as sw
from streamwise.bench.report import write_report
from streamwise.core.protocol import StreamingModule
from streamwise.layers.delta import sparsity


def digits_sequences(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train/test ``[N, 2, 64]`` pixel streams (intensity, relative time) and labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    t = torch.linspace(0, 1, 64).expand_as(x)
    seqs = torch.stack([x, t], 1)
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))
    return seqs[perm[:cut]], y[perm[:cut]], seqs[perm[cut:]], y[perm[cut:]]


class LastFrameClassifier(nn.Module):
    """A streaming body followed by a linear read-out of its last frame."""

    def __init__(self, body: StreamingModule, features: int, readout: str = "last") -> None:
        super().__init__()
        self.body, self.head, self.readout = body, nn.Linear(features, 10), readout

    def forward(self, x: Tensor) -> Tensor:
        h = self.body(x)
        feat = h.mean(-1) if self.readout == "mean" else h[..., -1]
        return self.head(feat)


def models(hidden: int = 48) -> dict[str, Callable[[], LastFrameClassifier]]:
    """Factories for the compared models (similar parameter counts, about 6-10 k)."""
    return {
        "GRU": lambda: LastFrameClassifier(sw.GRU(2, hidden), hidden),
        "LMU": lambda: LastFrameClassifier(
            sw.Sequential(sw.LMU(2, 96, order=48, theta=64.0, memory_channels=1)), 96),
        "Aaren": lambda: LastFrameClassifier(
            sw.Sequential(sw.Conv1d(2, 40, 8, padding="causal"), sw.GELU(),
                          sw.Aaren(40, heads=4, head_dim=10, out_dim=40), sw.GELU(),
                          sw.Linear(40, 40)), 40),
        "LIF": lambda: LastFrameClassifier(
            sw.Sequential(sw.Conv1d(2, 64, 8, padding="causal"), sw.LIF(64, 96, beta=0.95)),
            96, readout="mean"),
        "causal conv": lambda: LastFrameClassifier(
            sw.Sequential(
                sw.Conv1d(2, 24, 5, padding="causal"), sw.ReLU(),
                sw.Conv1d(24, 24, 5, padding="causal", dilation=2), sw.ReLU(),
                sw.Conv1d(24, 24, 5, padding="causal", dilation=4), sw.ReLU(),
                sw.Conv1d(24, 24, 5, padding="causal", dilation=8), sw.ReLU(),
            ), 24),
    }


def train(model: nn.Module, xtr: Tensor, ytr: Tensor, epochs: int, seed: int) -> float:
    """Adam on cross-entropy; returns the training seconds."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(ytr)).split(64):
            loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return time.perf_counter() - t0


def stream_eval(clf: LastFrameClassifier, x: Tensor, samples: int) -> dict[str, float]:
    """Stream ``samples`` test digits frame by frame: latency per push, state bytes, sparsity."""
    body = clf.body
    times, spikes, frames, sent, total = [], 0.0, 0, 0, 0
    nbytes = 0
    with torch.inference_mode():
        for i in range(samples):
            s = body.stream()
            for t in range(x.shape[-1]):
                t0 = time.perf_counter()
                h = s.push(x[i : i + 1, :, t : t + 1])
                times.append(time.perf_counter() - t0)
                spikes += float(h.sum())
                frames += h.numel()
            nbytes = s.state_nbytes()
            a, b = sparsity(s.state)
            sent, total = sent + a, total + b
    return {
        "latency_us_p50": float(np.percentile(times, 50) * 1e6),
        "latency_us_p99": float(np.percentile(times, 99) * 1e6),
        "state_bytes": nbytes,
        "activity": spikes / frames,  # mean output per unit and frame (spike rate for LIF)
        "delta_transmitted": sent / total if total else float("nan"),
    }


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    with torch.inference_mode():
        return float((model(x).argmax(1) == y).float().mean())


def delta_gru_from(gru_clf: LastFrameClassifier, threshold: float) -> LastFrameClassifier:
    """The trained GRU run as a DeltaGRU with the given thresholds (no retraining)."""
    assert isinstance(gru_clf.body, sw.GRU)
    delta = sw.DeltaGRU(2, gru_clf.body.hidden_size, threshold, threshold)
    delta.gru.load_state_dict(gru_clf.body.rnn.state_dict())
    clf = LastFrameClassifier(delta, gru_clf.body.hidden_size)
    clf.head.load_state_dict(gru_clf.head.state_dict())
    return clf


def run_sequence_bench(
    out_dir: str | Path = "bench-results", epochs: int = 25, seed: int = 0,
    stream_samples: int = 20, progress: bool = True,
) -> dict[str, Any]:
    """Train and compare the models; write ``sequence.json`` and ``sequence.png``."""
    torch.set_num_threads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    xtr, ytr, xte, yte = digits_sequences(seed)
    rows: list[dict[str, Any]] = []
    trained: dict[str, LastFrameClassifier] = {}
    for name, make in tqdm(models().items(), desc="bench seq", disable=not progress):
        torch.manual_seed(seed)
        clf = make()
        secs = train(clf, xtr, ytr, epochs, seed)
        clf.eval()
        trained[name] = clf
        row = {"model": name, "parameters": sum(p.numel() for p in clf.parameters()),
               "test_accuracy": accuracy(clf, xte, yte), "train_seconds": secs}
        row.update(stream_eval(clf, xte, stream_samples))
        rows.append(row)
    for thr in (0.05, 0.1, 0.2):
        clf = delta_gru_from(trained["GRU"], thr).eval()
        row = {"model": f"DeltaGRU (GRU weights, threshold {thr})",
               "parameters": sum(p.numel() for p in clf.parameters()),
               "test_accuracy": accuracy(clf, xte, yte), "train_seconds": 0.0}
        row.update(stream_eval(clf, xte, stream_samples))
        rows.append(row)
    result = {"task": "sequential digits (sklearn load_digits, 64 frames x 2 channels)",
              "train": len(ytr), "test": len(yte), "epochs": epochs, "seed": seed, "rows": rows}
    write_report(out, "sequence", result, lambda p: _plot(p, rows),
                 format_sequence_table(result))
    return result


def format_sequence_table(result: dict[str, Any]) -> str:
    lines = [
        "| model | params | test accuracy | per-step p50 / p99 (us) | state bytes | sparsity |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        if r["model"] == "LIF":
            sp = f"spike rate {r['activity']:.3f}"
        elif not np.isnan(r["delta_transmitted"]):
            sp = f"{100 * (1 - r['delta_transmitted']):.0f}% of updates skipped"
        else:
            sp = ""
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {100 * r['test_accuracy']:.1f}% | "
            f"{r['latency_us_p50']:.0f} / {r['latency_us_p99']:.0f} | {r['state_bytes']:,} | {sp} |"
        )
    return "\n".join(lines)


def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for r in rows:
        ax[0].scatter(r["latency_us_p50"], 100 * r["test_accuracy"], s=40)
        ax[0].annotate(r["model"].split(" (")[0] + (" " + r["model"].split("threshold ")[1][:-1]
                       if "threshold" in r["model"] else ""),
                       (r["latency_us_p50"], 100 * r["test_accuracy"]), fontsize=8)
        ax[1].scatter(r["state_bytes"], 100 * r["test_accuracy"], s=40)
        ax[1].annotate(r["model"].split(" (")[0], (r["state_bytes"], 100 * r["test_accuracy"]),
                       fontsize=8)
    ax[0].set_xlabel("per-step latency p50 (us), one frame per push")
    ax[0].set_ylabel("test accuracy (%)")
    ax[0].set_xscale("log")
    ax[1].set_xlabel("state bytes per stream")
    ax[1].set_xscale("log")
    ax[0].set_title("accuracy vs latency")
    ax[1].set_title("accuracy vs state size")
    fig.suptitle("sequential digits: streaming layers compared")
    fig.savefig(path, dpi=110)
    plt.close(fig)
