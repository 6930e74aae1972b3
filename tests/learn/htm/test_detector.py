import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from streamwise.learn.anomaly.postprocess import Spatial, nab_scoring
from streamwise.learn.htm.detector import HTMDetector


def _run(det, n=700, novel_at=650):
    t0 = datetime(2024, 1, 1)
    raws, scores = [], []
    for i in range(n):
        v = math.sin(2 * math.pi * i / 12) if i != novel_at else 5.0  # a value never seen
        scores.append(det.score_then_learn({"timestamp": t0 + timedelta(minutes=5 * i),
                                            "value": v}))
        raws.append(det.last_raw)
    return raws, scores


def test_htm_learns_a_periodic_signal_and_flags_a_novel_value():
    det = Spatial(HTMDetector(-1.0, 1.0, columns=256, time_of_day=False))
    raws, scores = _run(det)
    assert np.mean(raws[500:640]) < 0.3  # the cycle is predicted
    assert raws[650] > np.mean(raws[500:640]) + 0.5  # the novel value is not
    assert scores[650] == 1.0  # and lies outside the range seen: a spatial anomaly


def test_htm_is_deterministic_for_a_seed():
    a = _run(nab_scoring(HTMDetector(-1.0, 1.0, columns=128), probation=50), n=200)
    b = _run(nab_scoring(HTMDetector(-1.0, 1.0, columns=128), probation=50), n=200)
    assert a == b


def test_htm_refuses_a_bad_value_and_keeps_its_state():
    htm = HTMDetector(-1.0, 1.0, columns=128)
    det = nab_scoring(htm, probation=50)
    _run(det, n=100)
    lik = det.detector.detector.likelihood
    before = (htm.tm.n_segs, htm.tm.active_cells.copy(), lik.seen)
    for bad in (float("nan"), "x", {"timestamp": datetime(2024, 1, 1)}):
        for verb in (det.score_then_learn, det.score_one, htm.score_one, htm.learn_one):
            with pytest.raises(ValueError, match="expected"):
                verb(bad)
    assert (htm.tm.n_segs, lik.seen) == (before[0], before[2])
    assert np.array_equal(htm.tm.active_cells, before[1])
