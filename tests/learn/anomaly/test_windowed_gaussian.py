import pytest

from streamwise.learn.anomaly.windowed_gaussian import WindowedGaussian


def test_outliers_score_high_and_typical_values_low():
    det = WindowedGaussian(window=50, step=5)
    for i in range(200):
        det.learn_one(10.0 + (i % 7) * 0.1)
    assert det.score_one(10.3) <= 0.51  # at the mean: tail probability 0.5
    assert det.score_one(25.0) > 0.999
    assert det.score_one({"value": 10.3}) == det.score_one(10.3)


def test_window_slides_in_steps():
    det = WindowedGaussian(window=4, step=2)
    for v in [0, 0, 0, 0]:
        det.learn_one(v)
    det.learn_one(10)
    assert det.mean == 0.0  # waits for a full step
    det.learn_one(10)
    assert det.mean == 5.0 and len(det.values) == 4


@pytest.mark.parametrize("bad", [float("nan"), "abc", {"x": 1.0}, float("inf")])
def test_bad_records_are_refused_clearly(bad):
    det = WindowedGaussian()
    with pytest.raises((ValueError, KeyError)):
        det.learn_one(bad)
