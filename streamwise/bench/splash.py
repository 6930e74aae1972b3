"""SPLASH on MovieLens-100K as an edge stream: each day, predict the genre distribution of the
next day's ratings of every user active then (TGB ``tgbn-genre``'s task shape), NDCG@10.

The first ``select_frac`` of the days only collect instances for SPLASH's feature selection and
its predictor's first fit; every later day is scored for every model (persistence, moving
average, EMA, the global mean of all past labels, SPLASH, and the same MLP on all candidate
features, the no-selection ablation) before anything learns from it.  Writes ``splash.json``
and ``splash.png`` (NDCG@10 per day, smoothed) and prints a table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def run(out: Path, limit: int | None = None, progress: bool = True, period_s: int = 86_400,
        select_frac: float = 0.3) -> dict[str, Any]:
    import torch

    from streamwise.learn.movielens import load_movielens
    from streamwise.learn.splash import run_stream

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    ml = load_movielens()
    t = ml.timestamps[:limit]
    periods = (t - t[0]) // period_s
    start = time.perf_counter()
    res = run_stream(ml.users_of_ratings[:limit], ml.items_of_ratings[:limit], periods,
                     ml.genre.astype(float), ml.n_users, ml.n_items, select_frac=select_frac)
    seconds = time.perf_counter() - start
    per = res["periods"]
    days = sorted(set(per.tolist()))
    result: dict[str, Any] = {
        "setting": {"ratings": int(len(t)), "period_seconds": period_s,
                    "periods": res["n_periods"], "first_scored_period": res["first_scored_period"],
                    "scored_instances": int(len(per)), "select_frac": select_frac},
        "selected": res["selected"], "selection": res["selection"], "seconds": seconds,
        "ndcg@10": {n: float(np.nanmean(v)) if len(v) else float("nan")
                    for n, v in res["ndcg"].items()},
        "per_period": {"period": days, **{n: [float(np.nanmean(v[per == d])) for d in days]
                                          for n, v in res["ndcg"].items()}}}
    (out / "splash.json").write_text(json.dumps(result, indent=1))
    _plot(result, out / "splash.png")
    print(f"selected feature groups: {res['selected'] or '(none: the prior alone)'}")
    print(f"{'model':>26} {'NDCG@10':>8}   ({len(per)} user-days scored, {seconds:.1f} s)")
    for name, v in result["ndcg@10"].items():
        print(f"{name:>26} {v:8.4f}")
    print(f"wrote {out / 'splash.json'}, splash.png")
    return result


def _plot(result: dict[str, Any], path: Path, smooth: int = 7) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pp = result["per_period"]
    fig, ax = plt.subplots(figsize=(9, 4))
    for name in result["ndcg@10"]:
        v = np.asarray(pp[name], float)
        k = min(smooth, max(1, len(v)))
        ax.plot(pp["period"][k - 1:], np.convolve(v, np.ones(k) / k, "valid"), label=name)
    ax.set_xlabel("day of the stream")
    ax.set_ylabel(f"NDCG@10 (mean over users, {smooth}-day running mean)")
    ax.set_title("next-day genre distribution per active user (MovieLens-100K)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
