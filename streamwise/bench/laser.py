"""LASER's layer-wise scale alignment measured: a two-layer 'depth' model whose every window has
its own per-layer scales (it expresses each layer in the units of its input's first frames),
streamed by ``WindowStream`` without alignment, with one scale per window (``ScaleAlign(1)``) and
with one per layer (``ScaleAlign(2)``), over several window / hop settings.  Error: the largest
relative deviation from the offline output, and its mean.  Writes ``laser.json`` and ``.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SETTINGS = ((32, 8), (48, 16), (64, 16), (96, 32), (128, 64))


def _model() -> Any:
    import torch
    from torch import nn

    class FirstFramesDepth(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            ref = x[..., :8].mean(-1, keepdim=True)
            return x / ref * torch.tensor([1.0, 10.0], dtype=x.dtype).view(1, 2, 1)

    return FirstFramesDepth()


def _scene(length: int) -> Any:
    import torch

    gen = torch.Generator().manual_seed(0)
    t = torch.arange(length, dtype=torch.float64)
    near = 0.7 + 0.3 * torch.sin(t / 40) + 0.02 * torch.rand(length, generator=gen,
                                                             dtype=torch.float64)
    far = 6 + 2 * torch.cos(t / 55) + 0.1 * torch.rand(length, generator=gen, dtype=torch.float64)
    return torch.stack([near, far])[None]


def run(out: Path, length: int = 2000, chunk: int = 10) -> dict[str, Any]:
    from streamwise.convert import ScaleAlign, WindowStream
    from streamwise.core.verify import stream_chunks

    x, model = _scene(length), _model()
    ref = model(x)
    sizes = [chunk] * (length // chunk) + ([length % chunk] if length % chunk else [])
    rows = []
    for window, hop in SETTINGS:
        for name, align in (("none", None), ("one scale per window", ScaleAlign(1)),
                            ("layer-wise (LASER)", ScaleAlign(2))):
            ws = WindowStream(model, window=window, hop=hop, context=(window - hop, 0),
                              align=align)
            y, _ = stream_chunks(ws, x, sizes)
            rel = ((y - ref).abs() / ref.abs())
            rows.append({"window": window, "hop": hop, "align": name,
                         "max_relative_error": float(rel.max()),
                         "mean_relative_error": float(rel.mean())})
    result = {"length": length, "chunk": chunk, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "laser.json").write_text(json.dumps(result, indent=1))
    _plot(result, out / "laser.png")
    for r in rows:
        print(f"window {r['window']:>3} hop {r['hop']:>2} {r['align']:>22}: max relative error "
              f"{r['max_relative_error']:.2e}, mean {r['mean_relative_error']:.2e}")
    print(f"wrote {out / 'laser.json'}, laser.png")
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"{w}/{h}" for w, h in SETTINGS]
    for k, name in enumerate(("none", "one scale per window", "layer-wise (LASER)")):
        vals = [max(r["mean_relative_error"], 1e-17) for r in result["rows"]
                if r["align"] == name]
        ax.bar([i + 0.27 * (k - 1) for i in range(len(labels))], vals, 0.27, label=name)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yscale("log")
    ax.set_xlabel("window / hop (frames)")
    ax.set_ylabel("mean relative error against offline")
    ax.set_title("overlapping windows of a model with per-window, per-layer scales")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
