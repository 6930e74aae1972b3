"""Our learners where River expects its protocol, and River's where we expect mini-batches.

The verbs are the same on both sides, so these adapters only change what ``isinstance`` sees:
River's evaluators pick how to call a model from its base class (``base.Classifier``,
``base.AnomalyDetector``, ``time_series.base.Forecaster``), so ``to_river(ours)`` returns an
object of the matching River class that forwards every verb.  The other way round, our
evaluators call River models as they are; ``FromRiver`` adds ``learn_many`` / ``predict_many`` /
``predict_proba_many`` (one record at a time, features named ``f0``, ``f1``, ...) so that a River
model can meet the task-stream protocol, which hands learners whole tasks.  River is imported
only when an adapter is built.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from streamwise.learn.base import AnomalyDetector, Classifier, Forecaster, Regressor, check_matrix


def to_river(model: Any) -> Any:
    """``model`` (a streamwise estimator) as an instance of the River base class it matches."""
    from river import base
    from river.time_series.base import Forecaster as RiverForecaster

    if isinstance(model, Classifier):
        class _Classifier(base.Classifier):
            def __init__(self, model: Classifier) -> None:
                self.model = model

            def learn_one(self, x: dict, y: Hashable) -> None:
                self.model.learn_one(x, y)

            def predict_proba_one(self, x: dict, **kw: Any) -> dict:
                return self.model.predict_proba_one(x)

            def predict_one(self, x: dict, **kw: Any) -> Any:
                return self.model.predict_one(x)

            @property
            def _multiclass(self) -> bool:
                return True

        return _Classifier(model)
    if isinstance(model, Regressor):
        class _Regressor(base.Regressor):
            def __init__(self, model: Regressor) -> None:
                self.model = model

            def learn_one(self, x: dict, y: float) -> None:
                self.model.learn_one(x, y)

            def predict_one(self, x: dict) -> float:
                return self.model.predict_one(x)

        return _Regressor(model)
    if isinstance(model, AnomalyDetector):
        class _Detector(base.AnomalyDetector):
            def __init__(self, model: AnomalyDetector) -> None:
                self.model = model

            def learn_one(self, x: dict) -> None:
                self.model.learn_one(x)

            def score_one(self, x: dict) -> float:
                return self.model.score_one(x)

        return _Detector(model)
    if isinstance(model, Forecaster):
        class _Forecaster(RiverForecaster):
            def __init__(self, model: Forecaster) -> None:
                self.model = model

            def learn_one(self, y: float, x: dict | None = None) -> None:
                self.model.learn_one(y, x)

            def forecast(self, horizon: int, xs: list[dict] | None = None) -> list:
                return self.model.forecast(horizon, xs)

        return _Forecaster(model)
    raise ValueError(f"expected a streamwise Classifier, Regressor, AnomalyDetector or "
                     f"Forecaster, got {type(model).__name__}")


class FromRiver:
    """A River classifier (or regressor) with our mini-batch verbs added."""

    def __init__(self, model: Any, name: str | None = None) -> None:
        self.model = model
        self.name = name or type(model).__name__
        self.classes: list[Hashable] = []

    # -- River's own verbs, forwarded ----------------------------------------------------------
    def learn_one(self, x: dict, y: Any = None) -> None:
        if y not in self.classes:
            self.classes.append(y)
        self.model.learn_one(x, y)

    def predict_one(self, x: dict) -> Any:
        return self.model.predict_one(x)

    def predict_proba_one(self, x: dict) -> dict:
        return self.model.predict_proba_one(x)

    # -- mini-batches ----------------------------------------------------------------------------
    @staticmethod
    def rows(X: Any) -> list[dict[str, float]]:
        a = check_matrix(X)
        return [{f"f{j}": float(v) for j, v in enumerate(row)} for row in a]

    def learn_many(self, X: Any, y: Any) -> None:
        labels = np.asarray(y).tolist()
        rows = self.rows(X)
        if len(labels) != len(rows):
            raise ValueError(f"expected one label per row ({len(rows)}), got {len(labels)}")
        for x, label in zip(rows, labels):
            self.learn_one(x, label)

    def predict_many(self, X: Any) -> np.ndarray:
        return np.array([self.model.predict_one(x) for x in self.rows(X)])

    def predict_proba_many(self, X: Any) -> np.ndarray:
        """``(n, classes)`` probabilities, columns in the order the classes were first seen."""
        out = np.zeros((len(check_matrix(X)), len(self.classes)))
        for i, x in enumerate(self.rows(X)):
            p = self.model.predict_proba_one(x)
            for j, c in enumerate(self.classes):
                out[i, j] = p.get(c, 0.0)
        return out
