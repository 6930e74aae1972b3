import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from streamwise.learn.forecast.evaluate import errors, forecast_series
from streamwise.learn.forecast.htm_forecaster import HTMForecaster
from streamwise.learn.forecast.neural_forecaster import NeuralForecaster, Persistence
from streamwise.learn.series import Series


def _daily(n, period=48, noise=0.0, seed=0, change_after=None):
    rng = np.random.default_rng(seed)
    t0 = datetime(2024, 1, 1)
    ts = [t0 + timedelta(minutes=30 * i) for i in range(n)]
    vs = [100 + 50 * math.sin(2 * math.pi * i / period) + noise * rng.normal()
          + (80.0 if change_after is not None and i > change_after else 0.0) for i in range(n)]
    return Series("synthetic", ts, vs)


def test_errors_by_their_definitions():
    actual, predicted = np.array([10.0, 20.0, 30.0]), np.array([11.0, 18.0, 30.0])
    e = errors(actual, predicted)
    assert e["mape_percent"] == pytest.approx(100 * 1.0 / 20.0)
    assert e["mean_ape_percent"] == pytest.approx(100 * (0.1 + 0.1 + 0) / 3)
    assert e["nrmse"] == pytest.approx(math.sqrt(5 / 3) / np.std(actual))


@pytest.mark.parametrize("name", ["htm", "htmBacktrack", "neural"])
def test_forecasters_beat_persistence_on_a_daily_cycle(name):
    series = _daily(1500, noise=2.0)
    ours = forecast_series(name, series, steps=5, warmup=1000, progress=False)
    naive = forecast_series("persistence", series, steps=5, warmup=1000, progress=False)
    assert ours["mape_percent"] < 0.5 * naive["mape_percent"]


@pytest.mark.parametrize("make", [lambda: HTMForecaster(0.0, 300.0, horizon=3, columns=256),
                                  lambda: NeuralForecaster(horizon=3), Persistence])
def test_forecasts_never_look_ahead(make):
    """Two series equal up to record 200: every forecast made by then is identical."""
    a, b = _daily(260), _daily(260, change_after=200)
    preds = []
    for series in (a, b):
        model, out = make(), []
        for t, v in zip(series.timestamps, series.values):
            model.learn_one(v, {"timestamp": t})
            out.append(model.forecast(3))
        preds.append(out)
    assert preds[0][:201] == preds[1][:201]
    assert preds[0][201:] != preds[1][201:]


def test_bad_requests_are_named():
    series = _daily(100)
    with pytest.raises(ValueError, match="unknown forecaster"):
        forecast_series("nope", series)
    with pytest.raises(ValueError, match="warmup must be in"):
        forecast_series("persistence", series, warmup=100)
    with pytest.raises(ValueError, match="nothing learned"):
        NeuralForecaster().forecast(1)
    with pytest.raises(ValueError, match="expected a finite value"):
        NeuralForecaster().learn_one(float("nan"))
    model = Persistence()
    model.learn_one(1.0)
    with pytest.raises(ValueError, match="horizon >= 1"):
        model.forecast(0)
    with pytest.raises(ValueError, match="one dict per forecast step"):
        model.forecast(2, xs=[{}])
    with pytest.raises(ValueError, match="at most 3 steps ahead"):
        NeuralForecaster(horizon=3).forecast(4)
