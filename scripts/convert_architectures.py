"""Convert every test architecture (float32) and measure it: latency, state, error, speed.

    PYTHONPATH=. .venv/bin/python scripts/convert_architectures.py --out docs/convert

Writes ``convert_architectures.json`` and ``.png``.  Speed is a ratio measured in one run: the
time to stream the example in 16-frame chunks over the time of one offline forward pass.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import streamwise as sw  # noqa: E402
from streamwise.core.verify import random_chunks, stream_chunks  # noqa: E402
from tests.convert.architectures import architectures  # noqa: E402


def measure(name: str, model: torch.nn.Module, x: torch.Tensor, time_dim: int) -> dict:
    model, x = model.float(), x.float()
    t0 = time.perf_counter()
    s = sw.convert(model, x, time_dim, trials=5)
    convert_s = time.perf_counter() - t0
    r = s.report
    import numpy as np

    worst = 0.0
    rng = np.random.default_rng(1)
    with torch.inference_mode():
        ref = model(x)
        for _ in range(5):
            y, _ = stream_chunks(s, x, random_chunks(x.shape[time_dim], rng))
            worst = max(worst, float((y - ref).abs().max()))
        t0 = time.perf_counter()
        model(x)
        offline = time.perf_counter() - t0
        n = x.shape[time_dim]
        t0 = time.perf_counter()
        stream_chunks(s, x, [16] * (n // 16) + [n % 16])
        streamed = time.perf_counter() - t0
    return {"name": name, "latency_frames": r.latency_frames, "receptive_field":
            r.receptive_field, "state_bytes": r.state_bytes, "ops": len(r.ops),
            "max_abs_error": worst, "output_scale": r.output_scale, "frames": n,
            "convert_s": convert_s, "stream_over_offline": streamed / offline}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/convert")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, (model, x, time_dim, step) in architectures().items():
        shape = list(x.shape)
        shape[0] = 1
        shape[time_dim] = x.shape[time_dim] + 4 * step * max(1, 64 // step)
        torch.manual_seed(0)
        rows.append(measure(name, model, torch.randn(*shape, dtype=torch.float64), time_dim))
        print(json.dumps(rows[-1]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "convert_architectures.json").write_text(json.dumps(rows, indent=2))
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    names = [r["name"] for r in rows]
    ax[0].barh(names, [r["max_abs_error"] / max(r["output_scale"], 1) for r in rows])
    ax[0].set_xscale("log")
    ax[0].set_xlabel("max abs error / output scale (float32, 5 random chunkings)")
    ax[1].barh(names, [r["state_bytes"] for r in rows])
    ax[1].set_xscale("log")
    ax[1].set_xlabel("state bytes per stream (measured)")
    fig.suptitle("sw.convert on plain-torch architectures")
    fig.tight_layout()
    fig.savefig(out / "convert_architectures.png", dpi=110)


if __name__ == "__main__":
    main()
