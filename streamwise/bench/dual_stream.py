"""The Dual-Stream Transformer's interpretability cost: validation loss of independent, Kronecker
and dense head mixing against a standard transformer of equal parameter count.

All four variants (``streamwise.models.dual_stream``) are trained on the first 90% of the shipped
tinyshakespeare (characters as tokens) with the same seed, the same batches, steps and learning
rate schedule, then scored on every non-overlapping window of the last 10% (next-character
cross-entropy, nats).  The paper (29M parameters) reports independent mixing +8% and Kronecker
+2.5% over the *dense* dual-stream model; ratios against both the standard and the dense model
are written.  Each trained model is then streamed over held-out text in irregular chunks and its
largest deviation from the offline logits recorded.  Writes ``dual_stream.json`` and ``.png``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from streamwise.bench.report import write_report

VARIANTS = ("standard", "independent", "kronecker", "dense")
PAPER_RATIO_VS_DENSE = {"independent": 1.08, "kronecker": 1.025}


def _data() -> tuple[Any, list[str]]:
    import torch

    from streamwise.core.data_paths import shared_data

    path = shared_data() / "text" / "tinyshakespeare.txt"
    if not path.exists():
        raise FileNotFoundError(f"expected the shipped text at {path}")
    text = path.read_text()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index[c] for c in text], dtype=torch.long), vocab


def _lr(step: int, steps: int, lr: float) -> float:
    """Linear warm-up over 5% of the steps, then cosine down to a tenth."""
    warm = max(1, steps // 20)
    if step < warm:
        return lr * (step + 1) / warm
    frac = (step - warm) / max(1, steps - warm)
    return lr * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))


def _val_loss(model: Any, windows: Any, batch: int = 128) -> float:
    import torch
    import torch.nn.functional as F

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for w in windows.split(batch):
            logits = model(w[:, :-1])
            total += float(F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(),
                                           reduction="sum"))
            n += w[:, 1:].numel()
    model.train()
    return total / n


def _stream_error(model: Any, ids: Any, seed: int) -> tuple[float, float]:
    """Largest |streamed - offline| logit over irregular chunks (0- and 1-size included), and
    that over the logits' scale (the streaming contract's measure: <= 1e-5 in float32)."""
    import numpy as np
    import torch

    from streamwise.core.verify import random_chunks, stream_chunks

    model.eval()
    with torch.no_grad():
        ref = model(ids)
    y, _ = stream_chunks(model, ids, random_chunks(ids.shape[1], np.random.default_rng(seed), 9))
    err = float((y - ref).abs().max())
    return err, err / max(float(ref.abs().max()), 1.0)


def train_variant(arch: str, data: Any, cut: int, vocab: int, *, steps: int, dim: int,
                  heads: int, layers: int, length: int, batch: int, lr: float,
                  eval_every: int, seed: int, quick_val: Any, progress: bool) -> dict[str, Any]:
    """Train one variant; its parameter count, width, curves and the time it took."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from streamwise.models.dual_stream import DualStreamLM, count_parameters

    torch.manual_seed(seed)
    model = DualStreamLM(vocab, dim, heads, layers, arch=arch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)  # the same batches for every variant
    curve: dict[str, list[float]] = {"step": [], "train": [], "val": []}
    recent: list[float] = []
    seconds = 0.0
    bar = tqdm(range(steps), desc=f"train {arch:>11}", disable=not progress, leave=False)
    for step in bar:
        start = torch.randint(0, cut - length - 1, (batch,), generator=gen)
        x = torch.stack([data[s:s + length + 1] for s in start.tolist()])
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = _lr(step, steps, lr)
        loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seconds += time.perf_counter() - t0
        recent.append(float(loss.detach()))
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            curve["step"].append(step + 1)
            curve["train"].append(sum(recent) / len(recent))
            curve["val"].append(_val_loss(model, quick_val))
            recent = []
            bar.set_postfix(val=f"{curve['val'][-1]:.3f}")
    return {"model": model, "parameters": count_parameters(model), "ffn": model.ffn_width,
            "train_seconds": seconds, "curve": curve}


def run(out: Path, steps: int = 600, dim: int = 64, heads: int = 4, layers: int = 4,
        length: int = 64, batch: int = 16, lr: float = 3e-3, eval_every: int = 100,
        seed: int = 0, val_windows: int | None = None, threads: int = 1,
        progress: bool = True) -> dict[str, Any]:
    """Train the four variants at equal size and compare their validation loss.

    ``val_windows``: score only that many evenly spaced held-out windows (None: all of them);
    ``threads``: torch threads while it runs (one: steady on a shared machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(out, steps, dim, heads, layers, length, batch, lr, eval_every, seed,
                    val_windows, progress)
    finally:
        torch.set_num_threads(before)


def _run(out: Path, steps: int, dim: int, heads: int, layers: int, length: int, batch: int,
         lr: float, eval_every: int, seed: int, val_windows: int | None,
         progress: bool) -> dict[str, Any]:
    import torch

    data, vocab = _data()
    cut = int(0.9 * len(data))
    held = data[cut:]
    n_win = (len(held) - 1) // (length + 1)
    windows = held[: n_win * (length + 1)].view(n_win, length + 1)
    if val_windows is not None:
        windows = windows[torch.linspace(0, n_win - 1, min(val_windows, n_win)).long()]
    quick = windows[torch.linspace(0, len(windows) - 1, min(128, len(windows))).long()]
    rows: dict[str, dict[str, Any]] = {}
    for arch in VARIANTS:
        r = train_variant(arch, data, cut, len(vocab), steps=steps, dim=dim, heads=heads,
                          layers=layers, length=length, batch=batch, lr=lr,
                          eval_every=eval_every, seed=seed, quick_val=quick, progress=progress)
        model = r.pop("model")
        r["val_loss"] = _val_loss(model, windows)
        r["stream_max_abs_error"], r["stream_max_rel_error"] = _stream_error(
            model, held[None, : 4 * length], seed)
        rows[arch] = r
    for r in rows.values():
        r["ratio_vs_standard"] = r["val_loss"] / rows["standard"]["val_loss"]
        r["ratio_vs_dense"] = r["val_loss"] / rows["dense"]["val_loss"]
    result = {
        "config": {"steps": steps, "dim": dim, "heads": heads, "layers": layers,
                   "length": length, "batch": batch, "lr": lr, "seed": seed,
                   "vocab": len(vocab), "train_chars": cut, "val_tokens": windows.numel()
                   - len(windows), "threads": torch.get_num_threads()},
        "paper_ratio_vs_dense": PAPER_RATIO_VS_DENSE,
        "variants": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, "dual_stream", result, lambda p: _plot(result, p), _table(result))
    return result


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'variant':>12} {'params':>8} {'ffn':>5} {'val loss':>9} {'vs std':>8} "
             f"{'vs dense':>9} {'paper':>7} {'train s':>8} {'stream rel err':>14}"]
    for arch, r in result["variants"].items():
        paper = PAPER_RATIO_VS_DENSE.get(arch)
        lines.append(f"{arch:>12} {r['parameters']:>8} {r['ffn']:>5} {r['val_loss']:>9.4f} "
                     f"{r['ratio_vs_standard'] - 1:>+8.1%} {r['ratio_vs_dense'] - 1:>+9.1%} "
                     f"{'' if paper is None else f'{paper - 1:+.1%}':>7} "
                     f"{r['train_seconds']:>8.1f} {r['stream_max_rel_error']:>14.1e}")
    return "\n".join(lines)


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = list(result["variants"])
    for arch, r in result["variants"].items():
        c = r["curve"]
        axes[0].plot(c["step"], c["val"], marker="o", label=f"{arch} (val)")
        axes[0].plot(c["step"], c["train"], ls=":", color=axes[0].lines[-1].get_color())
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("loss (nats / char); dotted: train")
    axes[0].set_title("tinyshakespeare, equal parameter count")
    axes[0].legend()
    ratios = [100 * (result["variants"][a]["ratio_vs_dense"] - 1) for a in names]
    axes[1].bar(names, ratios, color="tab:blue", label="measured")
    paper = [100 * (PAPER_RATIO_VS_DENSE[a] - 1) if a in PAPER_RATIO_VS_DENSE else math.nan
             for a in names]
    axes[1].scatter(names, paper, color="tab:red", marker="_", s=600, label="paper (29M)",
                    zorder=3)
    axes[1].axhline(0, color="k", lw=0.8)
    axes[1].set_ylabel("validation loss vs dense mixing (%)")
    axes[1].set_title("cost of channelized head mixing")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
