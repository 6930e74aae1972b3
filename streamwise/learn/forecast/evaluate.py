"""Score online forecasters on a series: ``steps``-ahead predictions, MAPE and NRMSE after a
warm-up, and a plot of the last fortnight.  Each forecaster learns a record, then predicts the
value ``steps`` records later (the last of ``forecast(steps)``); nothing it sees comes after the
record it just learned."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from streamwise.learn.base import Forecaster
from streamwise.learn.forecast.htm_forecaster import HTMForecaster
from streamwise.learn.forecast.neural_forecaster import NeuralForecaster, Persistence
from streamwise.learn.series import Series

#: forecaster factories, given the series' (min, max) (only htm uses them) and the horizon
FORECASTERS: dict[str, Callable[[float, float, int], Forecaster]] = {
    "htm": lambda low, high, steps: HTMForecaster(low, high, horizon=steps),
    "htmBacktrack": lambda low, high, steps: HTMForecaster(low, high, horizon=steps,
                                                           tm="backtracking"),
    "neural": lambda low, high, steps: NeuralForecaster(horizon=steps),
    "persistence": lambda low, high, steps: Persistence(),
}


def errors(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAPE as Cui et al. 2016 compute it (mean |error| over mean |actual|, in %), the textbook
    mean of |error| / |actual| (in %; large where values near 0), and NRMSE (RMSE over the
    actual values' standard deviation)."""
    err = predicted - actual
    return {"mape_percent": float(100 * np.mean(np.abs(err)) / np.mean(np.abs(actual))),
            "mean_ape_percent": float(100 * np.mean(np.abs(err) / np.abs(actual))),
            "nrmse": float(np.sqrt(np.mean(err ** 2)) / np.std(actual))}


def forecast_series(name: str, series: Series, steps: int = 5, warmup: int = 6000,
                    progress: bool = True) -> dict[str, Any]:
    """Run forecaster ``name`` over ``series``; errors on targets after ``warmup`` records."""
    if name not in FORECASTERS:
        raise ValueError(f"unknown forecaster {name!r}; choose one of {sorted(FORECASTERS)}")
    values = np.array(series.values)
    if not 0 <= warmup < len(values) - steps:
        raise ValueError(f"warmup must be in [0, {len(values) - steps}), got {warmup}")
    model = FORECASTERS[name](float(values.min()), float(values.max()), steps)
    predicted = np.full(len(values), math.nan)  # predicted[i]: made at record i - steps
    t0 = time.perf_counter()
    for i, (t, v) in enumerate(tqdm(list(zip(series.timestamps, values)), desc=name,
                                    disable=not progress)):
        model.learn_one(float(v), {"timestamp": t})
        if i + steps < len(values):
            predicted[i + steps] = model.forecast(steps)[-1]
    seconds = time.perf_counter() - t0
    scored = slice(max(warmup, steps), len(values))
    return {"forecaster": name, "steps": steps, "warmup": warmup,
            "scored": len(values) - scored.start, **errors(values[scored], predicted[scored]),
            "us_per_record": 1e6 * seconds / len(values), "predicted": predicted.tolist()}


def plot_forecasts(series: Series, runs: list[dict[str, Any]], path: Path,
                   last: int = 14 * 48) -> None:
    """Actual values and each forecaster's predictions over the last ``last`` records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4))
    ts = np.array(series.timestamps[-last:], dtype="datetime64[s]")
    ax.plot(ts, series.values[-last:], color="black", lw=1.5, label="actual")
    for run in runs:
        ax.plot(ts, run["predicted"][-last:], lw=1,
                label=f"{run['forecaster']} (MAPE {run['mape_percent']:.1f}%)")
    ax.set_title(f"{series.name}: {runs[0]['steps']}-step-ahead online forecasts")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
