"""One verb set for everything in ``streamwise.learn`` that learns from a stream (River's).

================================  ==============================================================
``learn_one(x, y=None)``          update the model with one record: ``x`` a dict of features (or
                                  a number), ``y`` its target (``None`` when unsupervised)
``predict_one(x)``                the prediction for ``x``: a label or a number
``predict_proba_one(x)``          ``{label: probability}`` for ``x``
``score_one(x)``                  the anomaly score of ``x``: depends only on ``x`` and the
                                  current model
``learn_one(y, x=None)``          forecasters (River's time-series order): the next value ``y``
                                  and, optionally, its features (``{"timestamp": ...}``)
``forecast(horizon, xs=None)``    forecasters: the next ``horizon`` values, ``xs`` the features
                                  of those future records where known
``learn_many(X, y)``,             torch models on mini-batches: ``X`` an ``(n, features)`` array
``predict_many(X)``,              or tensor; a label array, or an ``(n, classes)`` array of
``predict_proba_many(X)``         probabilities
================================  ==============================================================

Only the ``learn`` verbs change a model; ``predict*``, ``score_one`` and ``forecast`` never do
(a test holds every estimator to it).  Invalid input raises ``ValueError`` naming what was
expected, before anything is touched.  River's estimators speak the same verbs, so our
evaluators take them as they are, and ``streamwise.learn.river`` lets ours stand where River
checks its own base classes.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np


def value_of(x: float | dict[str, Any], key: str = "value") -> float:
    """The numeric value of a record: a float, or ``x[key]`` of a dict; NaN/inf refused."""
    if isinstance(x, dict) and key not in x:
        raise ValueError(f"expected a dict with a {key!r} entry, got keys {sorted(x)}")
    v = x[key] if isinstance(x, dict) else x
    if isinstance(v, bool):
        raise ValueError(f"expected a number (or a dict with {key!r}), got {x!r}")
    try:
        f = float(v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"expected a number (or a dict with {key!r}), got {x!r}") from e
    if not math.isfinite(f):
        raise ValueError(f"expected a finite value, got {f}")
    return f


def feature_vector(x: dict[str, Any], names: Sequence[str]) -> np.ndarray:
    """``x``'s numeric features in the order ``names``, as float64; refuses a missing or unknown
    feature, a non-number and NaN/inf, naming the feature."""
    if not isinstance(x, dict):
        raise ValueError(f"expected a dict of features such as {list(names)[:8]}, "
                         f"got {type(x).__name__}")
    unknown = x.keys() - set(names)
    if unknown:
        raise ValueError(f"unknown features {sorted(map(str, unknown))[:8]}; expected "
                         f"{len(names)} features such as {list(names)[:8]}")
    out = np.empty(len(names))
    for i, n in enumerate(names):
        if n not in x:
            raise ValueError(f"missing feature {n!r} (expected all of {len(names)} features)")
        v = x[n]
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(f"feature {n!r}: expected a number, got {type(v).__name__} {v!r}")
        if not math.isfinite(v):
            raise ValueError(f"feature {n!r}: expected a finite number, got {v}")
        out[i] = v
    return out


def check_matrix(X: Any, n_features: int | None = None) -> np.ndarray:
    """A mini-batch as a finite float64 ``(n, features)`` array, or a ``ValueError``."""
    try:
        a = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"expected a numeric (n, features) array, got {type(X).__name__}") from e
    if a.ndim != 2 or (n_features is not None and a.shape[1] != n_features):
        want = f"(n, {n_features})" if n_features is not None else "(n, features)"
        raise ValueError(f"expected a {want} array, got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError("expected finite features, got NaN or inf")
    return a


class Estimator:
    """Anything that learns from a stream; ``_supervised`` as River means it."""

    _supervised = True


class Classifier(Estimator):
    def learn_one(self, x: Any, y: Any = None) -> None:
        raise NotImplementedError

    def predict_proba_one(self, x: Any) -> dict[Hashable, float]:
        raise NotImplementedError

    def predict_one(self, x: Any) -> Hashable | None:
        """The most probable label (``None`` before anything was learned)."""
        proba = self.predict_proba_one(x)
        return max(proba, key=proba.__getitem__) if proba else None


class BatchClassifier(Classifier):
    """A mini-batch classifier's one-record verbs: ``learn_one`` is one epoch of
    ``learn_many`` on a one-row batch, ``predict_proba_one`` one row of ``predict_proba_many``;
    records are dicts of the features ``names``.  Subclasses give ``names``, ``epochs``,
    ``classes``, ``learn_many`` and ``predict_proba_many``."""

    names: list[str]
    epochs: int

    @property
    def classes(self) -> list[Hashable]:
        raise NotImplementedError

    def learn_many(self, X: Any, y: Any) -> None:
        raise NotImplementedError

    def predict_proba_many(self, X: Any) -> np.ndarray:
        raise NotImplementedError

    def learn_one(self, x: dict[str, Any], y: Any = None) -> None:
        row = feature_vector(x, self.names)[None]
        epochs, self.epochs = self.epochs, 1
        try:
            self.learn_many(row, [y])
        finally:
            self.epochs = epochs

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Hashable, float]:
        p = self.predict_proba_many(feature_vector(x, self.names)[None])[0]
        return dict(zip(self.classes, p.tolist()))


class Regressor(Estimator):
    def learn_one(self, x: Any, y: Any = None) -> None:
        raise NotImplementedError

    def predict_one(self, x: Any) -> float:
        raise NotImplementedError


class AnomalyDetector(Estimator):
    """``score_one(x)`` scores a record with what was learned so far; ``learn_one(x)`` learns it.

    ``score_then_learn(x)`` is the two in that order (the prequential step NAB runs); models
    override it with a single pass that gives the same score and the same model.
    """

    _supervised = False
    #: the raw score (before any post-processing) behind the last ``score_then_learn``, if any
    last_raw: float | None = None

    def learn_one(self, x: Any, y: Any = None) -> None:
        raise NotImplementedError

    def score_one(self, x: Any) -> float:
        raise NotImplementedError

    def score_then_learn(self, x: Any) -> float:
        s = self.score_one(x)
        self.learn_one(x)
        return s


class Forecaster(Estimator):
    """River's time-series verbs: ``learn_one(y, x=None)``, ``forecast(horizon, xs=None)``."""

    def learn_one(self, y: Any, x: Any = None) -> None:
        raise NotImplementedError

    def forecast(self, horizon: int, xs: list[dict[str, Any]] | None = None) -> list[float]:
        raise NotImplementedError


def check_horizon(horizon: int, xs: list[dict[str, Any]] | None, most: int | None = None) -> None:
    """Refuse a horizon below 1 (or above what the model was built for) and ``xs`` of the
    wrong length."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"expected a horizon >= 1, got {horizon!r}")
    if most is not None and horizon > most:
        raise ValueError(f"this forecaster predicts at most {most} steps ahead (built with "
                         f"horizon={most}), got horizon={horizon}")
    if xs is not None and len(xs) != horizon:
        raise ValueError(f"expected xs with one dict per forecast step ({horizon}), "
                         f"got {len(xs)}")


class Labels:
    """The labels a classifier knows, in the order first learned (its output columns)."""

    def __init__(self, most: int | None = None) -> None:
        self.classes: list[Hashable] = []
        self.most = most  # None: grows without bound

    def index(self, ys: Sequence[Hashable], grow: bool = True) -> np.ndarray:
        """Column of each label; new labels are appended when ``grow`` (and room is left),
        refused otherwise, before any is added."""
        new = list(dict.fromkeys(y for y in ys if y not in self.classes))
        if new and not grow:
            raise ValueError(f"unknown labels {new[:5]}; this model knows {self.classes[:10]}")
        if new and self.most is not None and len(self.classes) + len(new) > self.most:
            raise ValueError(f"labels {new[:5]} would make {len(self.classes) + len(new)} "
                             f"classes; this model holds at most {self.most}")
        for y in new:
            if not isinstance(y, Hashable) or isinstance(y, float) and math.isnan(y):
                raise ValueError(f"expected hashable, non-NaN labels, got {y!r}")
        self.classes.extend(new)
        where = {c: i for i, c in enumerate(self.classes)}
        return np.array([where[y] for y in ys], dtype=np.int64)
