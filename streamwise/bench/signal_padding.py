"""StreamiNNC's signal padding: how far a CNN trained on zero-padded windows moves when it is
streamed, measured against a bound.

A 1-D CNN (three ``padding="same"`` convs, zero padding) is trained here to denoise fixed
``window``-record windows of real NAB series (noise added at 0.3 of each series' standard
deviation).  Deployed the old way, it runs on overlapping windows and keeps the newest ``hop``
outputs of each (*windowed*); streamed exactly (``sw.convert``), it computes every output with
the real neighbouring records where training saw zeros (*signal padding*; the same as the model
on the whole series).  The two differ only where a window's zeros reach an output: within the
receptive radius ``r`` of the window's right edge.  There, per output,

    |y_stream(t) - y_window(t)| <= L * ||x[e : e + r]||_2,   L = prod_l sum_k ||W_l[:, :, k]||_2

(``e`` the window's end; ``L`` bounds each conv's Lipschitz constant by its taps' spectral norms,
ReLU is 1-Lipschitz, so the map from the padded input to an output is L-Lipschitz).  Reported:
NRMSE of the streamed against the windowed outputs (RMSE over the range of the windowed ones, the
paper's measure), the largest deviation against its bound, and both against the clean target.
The streamed outputs come ``r`` records late (the lookahead of ``same`` padding); the windowed
ones at once, with zeros standing in for the future.
Writes ``signal_padding.json`` and ``.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SERIES = ("realKnownCause/nyc_taxi.csv", "realKnownCause/machine_temperature_system_failure.csv",
          "realKnownCause/ambient_temperature_system_failure.csv", "realTraffic/speed_7578.csv")


def _model(width: int = 16, kernel: int = 7) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, width, kernel, padding="same"), nn.ReLU(),
                         nn.Conv1d(width, width, kernel, padding="same"), nn.ReLU(),
                         nn.Conv1d(width, 1, kernel, padding="same"))


def lipschitz_bound(model: Any) -> float:
    """``prod_l sum_k ||W_l[:, :, k]||_2`` over the model's convs."""
    import torch

    bound = 1.0
    for m in model.modules():
        if isinstance(m, torch.nn.Conv1d):
            bound *= float(sum(torch.linalg.matrix_norm(m.weight.detach()[:, :, k], 2)
                               for k in range(m.weight.shape[-1])))
    return bound


def _data(noise: float, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    from streamwise.learn.series import load_series

    rng = np.random.default_rng(seed)
    out = []
    for name in SERIES:
        v = np.asarray(load_series(name).values, dtype=np.float64)
        clean = (v - v.mean()) / v.std()
        out.append((clean + noise * rng.standard_normal(len(clean)), clean))
    return out


def run(out: Path, window: int = 64, hop: int = 16, steps: int = 400, noise: float = 0.3,
        progress: bool = True) -> dict[str, Any]:
    import torch
    from tqdm import tqdm

    import streamwise as sw
    from streamwise.core.verify import stream_chunks

    torch.set_num_threads(1)
    data = _data(noise)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    train = [(x[: int(0.7 * len(x))], c[: int(0.7 * len(c))]) for x, c in data]
    for _ in tqdm(range(steps), desc="train on zero-padded windows", disable=not progress):
        xs, cs = [], []
        for _ in range(32):
            x, c = train[rng.integers(len(train))]
            s = rng.integers(0, len(x) - window)
            xs.append(x[s:s + window])
            cs.append(c[s:s + window])
        loss = torch.nn.functional.mse_loss(model(torch.tensor(np.stack(xs))[:, None].float()),
                                            torch.tensor(np.stack(cs))[:, None].float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = model.double().eval()
    r = sum(m.kernel_size[0] // 2 for m in model.modules() if isinstance(m, torch.nn.Conv1d))
    lip = lipschitz_bound(model)
    stream = sw.convert(model, torch.zeros(1, 1, 256, dtype=torch.float64))
    rows = []
    for name, (x, c) in zip(SERIES, data):
        x, c = x[int(0.7 * len(x)):], c[int(0.7 * len(c)):]  # the held-out end of each series
        xt = torch.tensor(x)[None, None]
        ys, _ = stream_chunks(stream, xt, [hop] * (len(x) // hop) + [len(x) % hop])
        streamed = ys[0, 0].detach().numpy()
        n = (len(x) - window) // hop * hop + window  # whole windows only
        windowed = np.full(len(x), np.nan)
        bound = np.full(len(x), np.nan)
        edge = np.zeros(len(x), bool)  # outputs within r of their window's right edge
        with torch.no_grad():
            for e in range(window, n + 1, hop):
                y = model(xt[..., e - window:e])[0, 0].numpy()
                windowed[e - hop:e] = y[-hop:]
                pad = float(np.linalg.norm(x[e:e + r])) if e + r <= len(x) else np.nan
                bound[e - hop:e] = lip * pad
                edge[max(0, e - r):e] = True
        keep = ~np.isnan(windowed) & ~np.isnan(bound)
        dev = np.abs(streamed - windowed)[keep]
        rng_w = float(np.ptp(windowed[keep]))
        rows.append({
            "series": name, "outputs": int(keep.sum()),
            "nrmse_stream_vs_windowed": float(np.sqrt(np.mean(dev ** 2)) / rng_w),
            "max_deviation": float(dev.max()), "max_bound": float(bound[keep].max()),
            "min_bound_over_deviation": float(np.min(bound[keep][dev > 0] / dev[dev > 0]))
            if (dev > 0).any() else float("inf"),
            "deviation_outside_edge_zone": float(np.abs(streamed - windowed)[keep & ~edge].max()),
            "rmse_streamed_vs_clean": float(np.sqrt(np.mean((streamed - c)[keep] ** 2))),
            "rmse_windowed_vs_clean": float(np.sqrt(np.mean((windowed - c)[keep] ** 2))),
            "rmse_noisy_vs_clean": float(np.sqrt(np.mean((x - c)[keep] ** 2))),
            "trace": {"streamed": streamed[:400].tolist(), "windowed": windowed[:400].tolist(),
                      "clean": c[:400].tolist()}})
    result = {"window": window, "hop": hop, "receptive_radius": r, "lipschitz_bound": lip,
              "noise": noise, "steps": steps, "final_train_mse": float(loss.detach()), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "signal_padding.json").write_text(json.dumps(result, indent=1))
    _plot(result, out / "signal_padding.png")
    print(f"window {window}, hop {hop}, receptive radius {r}, Lipschitz bound {lip:.3g}")
    for row in rows:
        print(f"{row['series']:>56}: NRMSE stream vs windowed {row['nrmse_stream_vs_windowed']:.2%}"
              f", max deviation {row['max_deviation']:.3f} (bound {row['max_bound']:.3g}); RMSE "
              f"to clean: streamed {row['rmse_streamed_vs_clean']:.3f}, windowed "
              f"{row['rmse_windowed_vs_clean']:.3f}, noisy {row['rmse_noisy_vs_clean']:.3f}")
    print(f"wrote {out / 'signal_padding.json'}, signal_padding.png")
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row = result["rows"][0]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for key, style in (("clean", "k-"), ("windowed", "C1-"), ("streamed", "C0--")):
        ax.plot(row["trace"][key], style, lw=1, label=key)
    hop = result["hop"]
    for e in range(result["window"], 400, hop):
        ax.axvline(e - hop, color="0.85", lw=0.5, zorder=0)
    ax.set_title(f"{row['series']} (held-out end): windowed (zero-padded, newest {hop} of each "
                 f"window) vs streamed (signal padding)")
    ax.set_xlabel("record")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
