"""Two-tower retrieval on MovieLens-100K in time order, prequential: rank first, then learn.

Every rating is an interaction (implicit feedback: the user chose to watch and rate the film).
For each one, all 1682 items are ranked for the user, minus the items the user rated before the
batch it falls in, and recall@10 / NDCG@10 of the rated item recorded; then the batch is
learned.  Models, all on the same stream and metric:

* popularity: the items ranked by their counts so far;
* online towers: ``TwoTower`` learned from each batch (plus a replay sample) as it arrives;
* refit towers: the same towers trained offline (``epochs`` passes) on all the past every
  ``period`` interactions, frozen in between (untrained before the first refit);
* graph towers: the online towers mixed with their user-item-genre neighbourhoods (2T-HGNN's
  light aggregation), the graph grown from the stream.

Writes ``retrieval.json`` and ``retrieval.png`` (recall@10 and NDCG@10 per window of the
stream) and prints a table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def side_features(ml: Any) -> tuple[np.ndarray, np.ndarray]:
    """Users: age / 100, female, occupation one-hot; items: genres, (year - 1990) / 10 (the
    mean year where unknown)."""
    occ = sorted(set(ml.occupation.tolist()))
    users = np.zeros((ml.n_users, 2 + len(occ)))
    users[:, 0] = ml.age / 100.0
    users[:, 1] = ml.gender == "F"
    users[np.arange(ml.n_users), 2 + np.searchsorted(occ, ml.occupation)] = 1.0
    year = np.where(np.isnan(ml.year), np.nanmean(ml.year), ml.year)
    items = np.concatenate([ml.genre.astype(float), ((year - 1990) / 10)[:, None]], 1)
    return users, items


def run(out: Path, limit: int | None = None, progress: bool = True, period: int = 10_000,
        epochs: int = 3, batch: int = 32, window: int = 5000) -> dict[str, Any]:
    import torch

    from streamwise.learn.movielens import load_movielens
    from streamwise.learn.two_tower import Popularity, Refit, TwoTower, prequential_retrieval

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    ml = load_movielens()
    users, items = ml.users_of_ratings[:limit], ml.items_of_ratings[:limit]
    su, si = side_features(ml)
    genres = ml.genre.astype(float)
    if limit is not None:
        period, window = min(period, max(1, limit // 4)), min(window, max(1, limit // 10))

    def towers(graph: bool = False) -> TwoTower:
        return TwoTower(su, si, graph=graph, genres=genres, lr=1e-2, replay=batch)

    models: dict[str, Callable[[], Any]] = {
        "popularity": lambda: Popularity(ml.n_users, ml.n_items),
        "online towers": towers,
        f"refit towers (every {period}, {epochs} epochs)":
            lambda: Refit(towers, period=period, epochs=epochs),
        "graph towers (2T-HGNN-style)": lambda: towers(graph=True)}
    reports = {}
    for name, make in models.items():
        reports[name] = prequential_retrieval(make(), users, items, batch=batch, name=name,
                                              progress=progress)
    result: dict[str, Any] = {
        "setting": {"interactions": int(len(users)), "batch": batch, "refit_period": period,
                    "refit_epochs": epochs, "k": 10, "evaluated": "every interaction",
                    "excluded": "items the user rated before the batch"},
        "models": {}}
    for name, r in reports.items():
        result["models"][name] = {"all": r.metrics(), f"after {period}": r.metrics(period),
                                  "seconds": r.seconds, "curve": r.curve(window)}
    (out / "retrieval.json").write_text(json.dumps(result, indent=1))
    _plot(result, out / "retrieval.png")
    print(f"{'model':>40} {'recall@10':>10} {'NDCG@10':>8} {'recall@10':>10} {'NDCG@10':>8}"
          f" {'seconds':>8}")
    print(f"{'':>40} {'(all)':>10} {'(all)':>8} {f'(>={period})':>10} {f'(>={period})':>8}")
    for name, m in result["models"].items():
        a, b = m["all"], m[f"after {period}"]
        print(f"{name:>40} {a['recall@10']:10.4f} {a['ndcg@10']:8.4f} {b['recall@10']:10.4f}"
              f" {b['ndcg@10']:8.4f} {m['seconds']:8.1f}")
    print(f"wrote {out / 'retrieval.json'}, retrieval.png")
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, metric in zip(axes, ("recall@10", "ndcg@10")):
        for name, m in result["models"].items():
            ax.plot(m["curve"]["end"], m["curve"][metric], marker=".", label=name)
        ax.set_title(f"{metric} per window of the stream (prequential)")
        ax.set_xlabel("interactions (time order)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"MovieLens-100K retrieval over all 1682 items, "
                 f"{result['setting']['interactions']} interactions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
