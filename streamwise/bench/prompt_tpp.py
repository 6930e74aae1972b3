"""``streamwise bench prompt-tpp``: a point process learned continually on real events.

Events are MovieLens-100K's ratings: each user's rating times (hours since the stream's first
rating), marked by the rated film's first listed genre.  The seven months are cut into
``periods`` of equal length; a user's events within a period are one sequence (cut into pieces of
at most ``max_len`` events), and the users are split once into 80% for training and 20% held out.
Each model learns the periods in order.  After period ``p`` it is scored on the held-out users'
sequences of period ``p + 1`` (the next period: what it would face live) and of every period so
far (what it kept): log-likelihood per event and next-mark accuracy.

Models: homogeneous Poisson and a marked Hawkes process (both fine-tuned on each period), the
neural TPP fine-tuned on each period, the neural TPP frozen after the first, and PromptTPP
(the first period's neural TPP frozen, a prompt pool and the head learned from then on).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Seq = tuple[np.ndarray, np.ndarray]


def period_sequences(users: np.ndarray, hours: np.ndarray, marks: np.ndarray, periods: int,
                     max_len: int = 64, held_out: float = 0.2, seed: int = 0
                     ) -> tuple[list[list[Seq]], list[list[Seq]]]:
    """Per period, the training users' and the held-out users' sequences (>= 2 events each)."""
    order = np.lexsort((hours, users))  # by user, then time (stable for equal times)
    users, hours, marks = users[order], hours[order], marks[order]
    edges = np.linspace(hours.min(), hours.max() + 1e-9, periods + 1)
    period = np.searchsorted(edges, hours, side="right") - 1
    rng = np.random.default_rng(seed)
    ids = np.unique(users)
    test_users = set(rng.choice(ids, int(round(held_out * len(ids))), replace=False).tolist())
    train: list[list[Seq]] = [[] for _ in range(periods)]
    test: list[list[Seq]] = [[] for _ in range(periods)]
    keys = users * periods + period
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(keys)]):
        out = test if int(users[a]) in test_users else train
        for k in range(a, b, max_len):
            piece = slice(k, min(k + max_len, b))
            if piece.stop - piece.start >= 2:
                out[int(period[a])].append((hours[piece], marks[piece]))
    return train, test


def _strategies(n_marks: int) -> dict[str, Callable[[Any, int], Any]]:
    """Each strategy: (model so far or None, period) -> (model, trainable parameters, extra)."""
    from streamwise.learn.prompt_tpp import PromptTPP
    from streamwise.learn.tpp import NeuralTPP
    from streamwise.learn.tpp_baselines import Hawkes, Poisson

    def fine_tune(make: Callable[[], Any]) -> Callable[[Any, int], Any]:
        def step(model: Any, p: int) -> Any:
            model = model or make()
            return model, list(model.parameters()), None
        return step

    def frozen(model: Any, p: int) -> Any:
        model = model or NeuralTPP(n_marks)
        return model, (list(model.parameters()) if p == 0 else []), None

    def prompt(model: Any, p: int) -> Any:
        if model is None:
            model = NeuralTPP(n_marks)
            return model, list(model.parameters()), None
        if not isinstance(model, PromptTPP):
            model = PromptTPP(copy.deepcopy(model), pool=10, length=2, top=2)
        return model, model.trainable(), model.matching_loss

    return {"Poisson": fine_tune(lambda: Poisson(n_marks)),
            "Hawkes": fine_tune(lambda: Hawkes(n_marks)),
            "neural, fine-tuned": fine_tune(lambda: NeuralTPP(n_marks)),
            "neural, frozen after period 1": frozen,
            "PromptTPP": prompt}


def _scores(model: Any, seqs: list[Seq], n_marks: int) -> dict[str, float]:
    from streamwise.learn.tpp import Events, tpp_metrics

    return tpp_metrics(model, Events.pad(seqs, n_marks))


def run(out: Path, periods: int = 7, epochs: int = 5, limit: int | None = None,
        progress: bool = True) -> dict[str, Any]:
    import torch
    from tqdm import tqdm

    from streamwise.learn.movielens import load_movielens
    from streamwise.learn.tpp import train

    torch.set_num_threads(1)
    ml = load_movielens()
    users, items, times = ml.users_of_ratings, ml.items_of_ratings, ml.timestamps
    if limit is not None:
        users, items, times = users[:limit], items[:limit], times[:limit]
    marks = ml.first_genre[items]
    n_marks = len(ml.genres)
    hours = (times - times.min()) / 3600.0
    train_seqs, test_seqs = period_sequences(users, hours, marks, periods)
    result: dict[str, Any] = {"periods": periods, "genres": ml.genres, "epochs": epochs,
                              "train_sequences": [len(s) for s in train_seqs],
                              "test_events": [sum(len(t) - 1 for t, _ in s) for s in test_seqs],
                              "models": {}}
    for name, strategy in _strategies(n_marks).items():
        model: Any = None
        log: dict[str, Any] = {"next": [], "seen": []}
        for p in tqdm(range(periods), desc=name, disable=not progress, leave=False):
            model, params, extra = strategy(model, p)
            if params:
                train(model, train_seqs[p], n_marks, params, epochs=epochs, extra_loss=extra,
                      seed=p)
            if p + 1 < periods:
                log["next"].append(_scores(model, test_seqs[p + 1], n_marks))
            log["seen"].append([_scores(model, test_seqs[q], n_marks) for q in range(p + 1)])
        final = log["seen"][-1]
        best = [max(log["seen"][i][q]["log_likelihood"] for i in range(q, periods))
                for q in range(periods)]
        log["summary"] = {
            "next_period_log_likelihood": float(np.mean([s["log_likelihood"]
                                                         for s in log["next"]])),
            "next_period_mark_accuracy": float(np.mean([s["mark_accuracy"]
                                                        for s in log["next"]])),
            "final_log_likelihood": float(np.mean([s["log_likelihood"] for s in final])),
            "final_mark_accuracy": float(np.mean([s["mark_accuracy"] for s in final])),
            "forgetting_log_likelihood": float(np.mean([best[q] - final[q]["log_likelihood"]
                                                        for q in range(periods - 1)])),
        }
        result["models"][name] = log
    out.mkdir(parents=True, exist_ok=True)
    (out / "prompt_tpp.json").write_text(json.dumps(result, indent=1))
    _plot(result, out / "prompt_tpp.png")
    for name, log in result["models"].items():
        s = log["summary"]
        print(f"{name:>30}: next period LL/event {s['next_period_log_likelihood']:+.3f}, "
              f"mark acc {s['next_period_mark_accuracy']:.3f}; after the last period, over all "
              f"periods: LL {s['final_log_likelihood']:+.3f}, mark acc "
              f"{s['final_mark_accuracy']:.3f}; forgetting (LL) "
              f"{s['forgetting_log_likelihood']:.3f}")
    print(f"wrote {out / 'prompt_tpp.json'} and {out / 'prompt_tpp.png'}")
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    periods = result["periods"]
    for k, (name, log) in enumerate(result["models"].items()):
        nxt = range(2, periods + 1)
        axes[0].plot(nxt, [s["log_likelihood"] for s in log["next"]], "o-", color=f"C{k}",
                     label=name)
        axes[1].plot(nxt, [s["mark_accuracy"] for s in log["next"]], "o-", color=f"C{k}")
        axes[2].plot(range(1, periods + 1), [s["log_likelihood"] for s in log["seen"][-1]],
                     "o-", color=f"C{k}")
    axes[0].set(title="next period: log-likelihood per event", xlabel="period scored")
    axes[1].set(title="next period: next-mark accuracy", xlabel="period scored")
    axes[2].set(title="after the last period: log-likelihood on each period",
                xlabel="period")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("MovieLens-100K rating times marked by genre, learned period after period")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
