"""Our prequential evaluator agrees with River's ``progressive_val_score`` on River's models."""

import json
import math

import pytest
from river import datasets, evaluate, linear_model, metrics, optim, preprocessing

from streamwise.learn import metrics as ours
from streamwise.learn.base import Classifier
from streamwise.learn.evaluate import compare, prequential, save_reports
from streamwise.learn.river_protocol import FromRiver, to_river


def _river_lr():
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optim.SGD(0.05))


def test_river_logistic_regression_scores_what_river_says():
    stream = list(datasets.Phishing())
    want = {}
    for metric in (metrics.Accuracy(), metrics.LogLoss(), metrics.ROCAUC(n_thresholds=50)):
        want[type(metric).__name__] = evaluate.progressive_val_score(stream, _river_lr(),
                                                                     metric).get()
    report = prequential(_river_lr(), stream, [ours.Accuracy(), ours.LogLoss()],
                         progress=False)
    got = report.final()
    assert report.samples == len(stream) == 1250
    assert got["Accuracy"] == pytest.approx(want["Accuracy"], abs=1e-12)
    assert got["LogLoss"] == pytest.approx(want["LogLoss"], rel=1e-9)
    # River's own metric objects run through ours and give River's numbers
    theirs = prequential(_river_lr(), stream, [metrics.Accuracy(), metrics.ROCAUC(n_thresholds=50)],
                         progress=False).final()
    assert theirs["Accuracy"] == pytest.approx(want["Accuracy"], abs=1e-12)
    assert theirs["ROCAUC"] == pytest.approx(want["ROCAUC"], abs=1e-12)
    exact = prequential(_river_lr(), stream, [ours.ROCAUC()], progress=False).final()["ROCAUC"]
    assert abs(exact - want["ROCAUC"]) < 0.01  # River's grid of 50 thresholds is close


class MajorityClass(Classifier):
    """A streamwise classifier: the class seen most often so far."""

    def __init__(self):
        self.counts = {}

    def learn_one(self, x, y=None):
        self.counts[y] = self.counts.get(y, 0) + 1

    def predict_proba_one(self, x):
        n = sum(self.counts.values())
        return {c: k / n for c, k in self.counts.items()}


def test_ours_runs_where_river_expects_its_protocol():
    stream = list(datasets.Phishing())
    river_score = evaluate.progressive_val_score(stream, to_river(MajorityClass()),
                                                 metrics.Accuracy()).get()
    our_score = prequential(MajorityClass(), stream, [ours.Accuracy()], progress=False)
    assert river_score == pytest.approx(our_score.final()["Accuracy"], abs=1e-12)
    with pytest.raises(ValueError, match="expected a streamwise"):
        to_river(object())


def test_report_has_rolling_metrics_timing_and_macs(tmp_path):
    import torch

    class TorchLogistic(Classifier):
        def __init__(self):
            self.net = torch.nn.Linear(9, 1)
            self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)

        def _x(self, x):
            return torch.tensor([[float(v) for v in x.values()]])

        def predict_proba_one(self, x):
            with torch.no_grad():
                p = float(torch.sigmoid(self.net(self._x(x))))
            return {True: p, False: 1 - p}

        def learn_one(self, x, y=None):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                self.net(self._x(x))[0, 0], torch.tensor(float(y)))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    stream = list(datasets.Phishing())
    reports = compare({"torch": TorchLogistic, "majority": MajorityClass}, lambda: stream,
                      lambda: [ours.Accuracy(), ours.LogLoss()], window=200, checkpoints=10,
                      progress=False)
    r = reports["torch"]
    assert r.steps[-1] == 1250 and len(r.steps) == 10
    assert r.macs_per_sample is not None and r.macs_per_sample >= 9  # a dot product at least
    assert reports["majority"].macs_per_sample is None  # no torch arithmetic
    assert r.final()["Accuracy"] > reports["majority"].final()["Accuracy"]
    assert not math.isclose(r.rolling["Accuracy"][-1], r.cumulative["Accuracy"][-1])
    paths = save_reports(reports, tmp_path, "Phishing", "phishing")
    assert json.loads(paths[0].read_text())["torch"]["samples"] == 1250
    assert paths[1].stat().st_size > 10_000
    with pytest.raises(ValueError, match="at least one metric"):
        prequential(MajorityClass(), stream, [])


def test_river_models_take_mini_batches():
    import numpy as np

    model = FromRiver(linear_model.LogisticRegression())
    X = np.array([[0.0, 1.0], [1.0, 0.0]] * 20)
    y = np.array([True, False] * 20)
    model.learn_many(X, y)
    assert (model.predict_many(X) == y).all()
    assert model.predict_proba_many(X).shape == (40, 2)
    with pytest.raises(ValueError, match=r"\(n, features\)"):
        model.learn_many(np.zeros(3), y[:3])
