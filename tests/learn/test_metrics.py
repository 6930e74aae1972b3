import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.learn.metrics import MAE, RMSE, ROCAUC, Accuracy, LogLoss, Rolling


def _auc_by_pairs(ys, ss):
    pos = [s for y, s in zip(ys, ss) if y]
    neg = [s for y, s in zip(ys, ss) if not y]
    if not pos or not neg:
        return math.nan
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.5, 0.7, 1.0])),
                max_size=40), st.integers(1, 10))
def test_exact_auc_and_its_rolling_window(pairs, window):
    auc, rolling = ROCAUC(), Rolling(ROCAUC(), window)
    for i, (y, s) in enumerate(pairs):
        auc.update(y, {True: s, False: 1 - s})
        rolling.update(y, s)
        ys, ss = [p[0] for p in pairs[: i + 1]], [p[1] for p in pairs[: i + 1]]
        for got, want in ((auc.get(), _auc_by_pairs(ys, ss)),
                          (rolling.get(), _auc_by_pairs(ys[-window:], ss[-window:]))):
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


def test_means_by_their_definitions_and_revert():
    acc, ll, mae, rmse = Accuracy(), LogLoss(), MAE(), RMSE()
    for y, p in ((True, 0.9), (False, 0.2), (True, 0.4)):
        acc.update(y, p > 0.5)
        ll.update(y, {True: p, False: 1 - p})
    assert acc.get() == pytest.approx(2 / 3)
    assert ll.get() == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3)
    ll.revert(True, {True: 0.4, False: 0.6})
    assert ll.get() == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2)
    multi = LogLoss()
    multi.update("b", {"a": 0.25, "b": 0.75})
    assert multi.get() == pytest.approx(-np.log(0.75))
    for y, p in ((1.0, 2.0), (3.0, 1.0)):
        mae.update(y, p)
        rmse.update(y, p)
    assert (mae.get(), rmse.get()) == pytest.approx((1.5, math.sqrt(2.5)))
    assert math.isnan(Accuracy().get())
