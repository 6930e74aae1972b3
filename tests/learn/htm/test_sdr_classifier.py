import numpy as np
import pytest

from streamwise.learn.htm.sdr_classifier import SDRClassifier


def test_learns_which_value_follows_each_pattern():
    clf = SDRClassifier(100, resolution=1.0, steps=2, alpha=0.3)
    a, b, c = np.arange(0, 10), np.arange(20, 30), np.arange(50, 60)
    seq = [(a, 5.0), (b, 17.0), (c, 42.0)] * 30  # a is followed two steps later by c's value
    for pattern, value in seq:
        clf.learn(pattern, value)
    assert clf.predict(a) == pytest.approx(42.0)
    assert clf.predict(b) == pytest.approx(5.0)
    assert clf.predict(c) == pytest.approx(17.0)
    p = clf.distribution(a)
    assert p.sum() == pytest.approx(1.0) and p.max() > 0.8


def test_bucket_values_follow_the_values_seen():
    clf = SDRClassifier(10, resolution=10.0, steps=1)
    for v in (3.0, 4.0, 5.0):
        clf.learn(np.array([1]), v)
    assert len(clf.bucket_values) == 1 and 3.0 < clf.bucket_values[0] < 5.0


def test_refuses_to_predict_before_learning_and_bad_settings():
    with pytest.raises(ValueError, match="nothing learned"):
        SDRClassifier(10, resolution=1.0).predict(np.array([1]))
    with pytest.raises(ValueError, match="resolution > 0"):
        SDRClassifier(10, resolution=0.0)
