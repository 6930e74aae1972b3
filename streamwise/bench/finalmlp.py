"""FinalMLP learned online, in one pass, on MovieLens-100K as a click stream, against River.

The 100,000 ratings are replayed once in time order (``MovieLens.click_stream``: user, item,
age bucket, gender, occupation, zip region, release decade, genres, hour, weekday; the label is
``rating >= 4``).  Every model predicts each record before learning it (``prequential``), and is
scored by exact ROC AUC and log loss, cumulative and over the last ``window`` records, with the
time and the multiply-accumulates per record (the evaluator's count, on the first ``2 EVERY``
records: two whole mini-batches).

Models: ``FinalMLP`` (gates conditioned on the user's fields and the item's, streams
``(128, 64)`` and ``(64,)``, 4 fusion heads, 16-d embeddings hashed into 2**17 rows, Adam on
mini-batches of ``EVERY`` records), ``PlainMLP`` (the same without gates, second stream and
fusion), River's ``LogisticRegression`` and ``FMClassifier`` (10 factors) on a one-hot encoding of
the same fields (``{"user=196": 1, "genres=Comedy": 1, ...}``), both with plain SGD (River's
default optimiser).

Tuning, the same for every model: three learning rates each (``GRID``), each run prequentially
on the first ``tune`` records (5% of the stream by default); the one with the best ROC AUC
there is run on the whole stream from scratch.  The tuning runs are saved with the results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVERY = 4  # FinalMLP / PlainMLP: one Adam step per 4 records (each record in one step)
GRID: dict[str, tuple[float, ...]] = {
    "FinalMLP": (3e-4, 1e-3, 3e-3),  # Adam
    "PlainMLP": (3e-4, 1e-3, 3e-3),  # Adam
    "River LogisticRegression": (0.01, 0.03, 0.1),  # SGD
    "River FMClassifier": (0.01, 0.03, 0.1),  # SGD
}


def one_hot(x: dict[str, Any]) -> dict[str, float]:
    """River's encoding of a click record: one indicator per field value (and per genre)."""
    out: dict[str, float] = {}
    for k, v in x.items():
        for u in (v if isinstance(v, tuple | list | set | frozenset) else (v,)):
            out[f"{k}={u}"] = 1.0
    return out


def factories() -> dict[str, Callable[[float], Any]]:
    """Each model as a function of its learning rate."""
    from river import compose, facto, linear_model, optim

    from streamwise.learn.finalmlp import FinalMLP, PlainMLP
    from streamwise.learn.movielens import CLICK_FIELDS, ITEM_FIELDS, USER_FIELDS

    def river(make: Callable[[float], Any]) -> Callable[[float], Any]:
        return lambda lr: compose.FuncTransformer(one_hot) | make(lr)

    return {
        "FinalMLP": lambda lr: FinalMLP(CLICK_FIELDS, USER_FIELDS, ITEM_FIELDS, lr=lr,
                                        every=EVERY),
        "PlainMLP": lambda lr: PlainMLP(CLICK_FIELDS, lr=lr, every=EVERY),
        "River LogisticRegression": river(lambda lr: linear_model.LogisticRegression(
            optimizer=optim.SGD(lr), intercept_lr=lr)),
        "River FMClassifier": river(lambda lr: facto.FMClassifier(
            n_factors=10, weight_optimizer=optim.SGD(lr), latent_optimizer=optim.SGD(lr),
            intercept_lr=lr, seed=0)),
    }


def run(out: Path, limit: int | None = None, progress: bool = True, tune: int = 5000,
        window: int = 5000) -> dict[str, Any]:
    """Tune (``tune`` records; 0 skips it and takes each grid's middle value), run every model
    on the stream (the first ``limit`` records), write ``out/finalmlp.json`` and ``.png``."""
    import torch

    from streamwise.learn.evaluate import prequential, save_reports
    from streamwise.learn.metrics import ROCAUC, LogLoss
    from streamwise.learn.movielens import load_movielens

    torch.set_num_threads(1)
    ml = load_movielens()
    stream = list(ml.click_stream(limit))
    tune = min(tune, len(stream))
    tuning: dict[str, dict[str, dict[str, float]]] = {}
    chosen: dict[str, float] = {}
    reports = {}
    for name, make in factories().items():
        grid = GRID[name]
        chosen[name] = grid[len(grid) // 2]
        if tune:
            tuning[name] = {
                str(lr): prequential(make(lr), stream[:tune], [ROCAUC(), LogLoss()],
                                     window=window, progress=progress,
                                     name=f"{name} lr={lr}").final() for lr in grid}
            chosen[name] = max(grid, key=lambda lr: tuning[name][str(lr)]["ROCAUC"])
        reports[name] = prequential(make(chosen[name]), stream, [ROCAUC(), LogLoss()],
                                    window=window, progress=progress, name=name,
                                    count_macs=2 * EVERY)  # whole steps
    paths = save_reports(reports, out, f"MovieLens-100K as a click stream (rating >= 4), "
                         f"{len(stream)} records, one prequential pass", "finalmlp")
    result = json.loads(paths[0].read_text())
    result["_setup"] = {"records": len(stream), "positive_rate": float(
        sum(y for _, y in stream) / max(1, len(stream))), "tune_records": tune,
        "learning_rates": chosen, "tuning": tuning, "every": EVERY, "window": window}
    paths[0].write_text(json.dumps(result, indent=1))
    for name, r in reports.items():
        f = r.final()
        macs = f"{r.macs_per_sample:,.0f}" if r.macs_per_sample else "-"
        print(f"{name:>26} (lr {chosen[name]:g}): ROC AUC {f['ROCAUC']:.4f}, log loss "
              f"{f['LogLoss']:.4f}, {r.us_per_sample:,.0f} us/record, MACs/record {macs}")
    print(f"wrote {paths[0]} and {paths[1]}")
    return result
