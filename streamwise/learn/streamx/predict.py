"""Online prediction of a real series with stream TD(lambda): the discounted future signal.

At every step the learner sees the last ``window`` values (normalised online) and predicts
``G_t = sum_k gamma^k x_{t+1+k}`` (the series' own future, discounted), learning from each step
once.  The truth ``G_t`` is computed afterwards from the whole series, for evaluation only.  The
deep learner (sparse MLP, ObGD) is compared with linear TD(lambda) on the same features.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from streamwise.learn.running_stats import RunningStats
from streamwise.learn.series import load_series
from streamwise.learn.streamx.agents import StreamTD


def load_nab_series(relative: str) -> np.ndarray:
    """The values of a NAB data file (e.g. ``realKnownCause/nyc_taxi.csv``) as an array."""
    return np.asarray(load_series(relative).values)


def discounted_future(x: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = sum_k gamma^k x[t + 1 + k]`` (0 past the end), by a backward pass."""
    g = np.zeros(len(x))
    acc = 0.0
    for t in range(len(x) - 2, -1, -1):
        acc = x[t + 1] + gamma * acc
        g[t] = acc
    return g


def run_prediction(x: np.ndarray, learner: StreamTD, window: int, progress: bool = False
                   ) -> np.ndarray:
    """Predictions ``v_t`` made online (before learning from step t)."""
    stats = RunningStats()
    norm = np.zeros(len(x))
    preds = np.zeros(len(x))
    for t in tqdm(range(len(x) - 1), disable=not progress, mininterval=1.0):
        stats.update(x[t])  # the past and present only
        norm[t] = stats.standardise(x[t])
        if t < window:
            continue
        obs = norm[t - window + 1 : t + 1]
        nxt = np.append(obs[1:], stats.standardise(x[t + 1]))
        preds[t] = learner.predict(obs)
        learner.update(obs, float(nxt[-1]), nxt, terminated=False)
    return preds


def normalised_error_curve(pred: np.ndarray, truth: np.ndarray, start: int, block: int
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared error over blocks of steps, over the variance of the truth."""
    var = float(np.var(truth[start:]))
    ends = np.arange(start + block, len(truth), block)
    errs = np.array([np.mean((pred[e - block : e] - truth[e - block : e]) ** 2) / var
                     for e in ends])
    return ends, errs


def compare_prediction(series: str = "realKnownCause/nyc_taxi.csv", gamma: float = 0.9,
                       window: int = 48, seed: int = 0, out_dir: str | Path = "bench-results",
                       linear_lrs: tuple[float, ...] = (0.1, 0.01, 0.001)) -> dict[str, Any]:
    """Deep stream TD(lambda) vs linear TD(lambda) (best of ``linear_lrs``); JSON + PNG."""
    x = load_nab_series(series)
    # targets are in normalised units; the truth uses the same online normalisation, frozen at
    # the end, to keep the comparison in one scale
    z = (x - x.mean()) / x.std()
    truth = discounted_future(z, gamma)
    warm = 1000
    results: dict[str, Any] = {}
    deep = StreamTD(window, hidden=(64, 64), gamma=gamma, seed=seed)
    preds = {"stream TD (MLP, ObGD)": run_prediction(x, deep, window)}
    best_lin, best_err = None, np.inf
    for lr in linear_lrs:
        lin = StreamTD(window, hidden=(), gamma=gamma, optimizer="sgd", lr=lr, seed=seed,
                       sparsity=0.0)
        p = run_prediction(x, lin, window)
        err = float(np.mean((p[warm:-1] - truth[warm:-1]) ** 2)) if np.all(np.isfinite(p)) \
            else np.inf
        if err < best_err:
            best_lin, best_err = (lr, p), err
    assert best_lin is not None
    preds[f"linear TD (SGD, lr {best_lin[0]:g})"] = best_lin[1]
    curves = {}
    for name, p in preds.items():
        ends, errs = normalised_error_curve(p, truth, warm, 500)
        curves[name] = errs.tolist()
        results[name] = {"normalised_mse_after_warmup":
                         float(np.mean((p[warm:-1] - truth[warm:-1]) ** 2) / np.var(truth[warm:]))}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {"series": series, "gamma": gamma, "window": window, "warmup": warm,
              "results": results, "block_ends": ends.tolist(), "curves": curves}
    (out / "td_prediction.json").write_text(json.dumps(report, indent=2))
    _plot(out / "td_prediction.png", report)
    for name, r in results.items():
        print(f"{name}: normalised MSE after warm-up {r['normalised_mse_after_warmup']:.3f}")
    return report


def _plot(path: Path, report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), constrained_layout=True)
    for name, errs in report["curves"].items():
        ax.plot(report["block_ends"], errs, "o-", ms=3, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("MSE / var(G) over 500-step blocks")
    ax.set_title(f"online prediction of the discounted future, {report['series']}")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
