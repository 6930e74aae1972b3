"""One verb set, one meaning: only ``learn*`` changes a model.  Every estimator of
``streamwise.learn`` is fed a few records, then asked to predict, score or forecast; its pickled
state must be byte-for-byte what it was."""

import math
import pickle
from datetime import datetime, timedelta

import numpy as np
import pytest

from streamwise.learn.anomaly.lmu_predictor import LMUPredictorDetector
from streamwise.learn.anomaly.postprocess import nab_scoring
from streamwise.learn.anomaly.windowed_gaussian import WindowedGaussian
from streamwise.learn.dkvb import DKVB
from streamwise.learn.forecast.htm_forecaster import HTMForecaster
from streamwise.learn.forecast.neural_forecaster import NeuralForecaster, Persistence
from streamwise.learn.htm.detector import HTMDetector
from streamwise.learn.mlp import MLPClassifier

T0 = datetime(2024, 1, 1)


def _records(n=120):
    return [{"timestamp": T0 + timedelta(minutes=30 * i), "value": math.sin(i / 5) + (i == 90)}
            for i in range(n)]


DETECTORS = {
    "windowed_gaussian": lambda: WindowedGaussian(window=50, step=10),
    "lmu": LMUPredictorDetector,
    "htm": lambda: HTMDetector(-1.0, 2.0, columns=128),
    "nab_scoring(htm)": lambda: nab_scoring(HTMDetector(-1.0, 2.0, columns=128), 40),
    "nab_scoring(lmu)": lambda: nab_scoring(LMUPredictorDetector(), 40),
}
FORECASTERS = {
    "htm": lambda: HTMForecaster(-1.0, 2.0, horizon=3, columns=128),
    "neural": lambda: NeuralForecaster(horizon=3),
    "persistence": Persistence,
}


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_scoring_changes_nothing(name):
    det = DETECTORS[name]()
    for r in _records():
        state = pickle.dumps(det)
        s = det.score_one(r)
        assert pickle.dumps(det) == state
        assert 0.0 <= s <= 1.0
        assert det.score_then_learn(r) == s


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_forecasting_changes_nothing(name):
    model = FORECASTERS[name]()
    for r in _records(80):
        model.learn_one(r["value"], {"timestamp": r["timestamp"]})
    state = pickle.dumps(model)
    three = model.forecast(3)
    assert model.forecast(2) == three[:2] and len(three) == 3
    assert pickle.dumps(model) == state
    with pytest.raises(ValueError, match="expected a finite value"):
        model.learn_one(float("inf"))
    assert pickle.dumps(model) == state


@pytest.mark.parametrize("make", [lambda: MLPClassifier(4, epochs=2),
                                  lambda: DKVB(4, codebooks=4, keys=8).fit_keys(
                                      np.random.default_rng(0).normal(size=(64, 4)))])
def test_predicting_changes_nothing(make):
    model = make()
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 4))
    model.learn_many(X, X[:, 0] > 0)
    state = pickle.dumps(model)
    model.predict_proba_many(X)
    x = {f"f{i}": float(v) for i, v in enumerate(X[0])}
    p = model.predict_proba_one(x)
    assert model.predict_one(x) == max(p, key=p.get)
    assert pickle.dumps(model) == state


def test_an_lmu_score_depends_on_the_record_scored():
    """The old ``score_one`` returned the previous record's score whatever ``x`` was."""
    det = nab_scoring(LMUPredictorDetector(), 40)
    for r in _records(200):
        det.learn_one(r)
    calm, spike = det.score_one(0.5), det.score_one(50.0)
    assert spike == 1.0 and calm < spike  # 50 lies far outside the range seen
    assert det.score_then_learn(50.0) == spike
