import pytest

from streamwise.learn.anomaly.postprocess import Likelihood, Onset, Spatial, nab_scoring
from streamwise.learn.base import AnomalyDetector


class Given(AnomalyDetector):
    """A stand-in detector whose raw score is the record's ``raw`` entry."""

    def score_one(self, x):
        return x["raw"]

    def learn_one(self, x, y=None):
        pass


def _calm_then(det, tail, n=300, value=1.0):
    calm = [{"raw": 0.02 if i % 7 else 0.1, "value": value + 0.01 * (i % 5)} for i in range(n)]
    out = [det.score_then_learn(r) for r in calm]
    return out, [det.score_then_learn({"raw": raw, "value": v}) for raw, v in tail]


def test_only_the_onset_of_an_episode_is_reported():
    damped = Onset(Likelihood(Given(), probation=100, average=5, times_raw=True), window=20)
    plain = Likelihood(Given(), probation=100, average=5, times_raw=True)
    calm, tail = _calm_then(damped, [(1.0, 1.02)] * 8)
    _, plain_tail = _calm_then(plain, [(1.0, 1.02)] * 8)
    assert max(calm[100:]) < 0.2
    assert sum(s > 0.2 for s in plain_tail) >= 4  # undamped, the episode stays high
    high = [i for i, s in enumerate(tail) if s > 0.2]
    assert high and high[0] == next(i for i, s in enumerate(plain_tail) if s > 0.2)
    for i in high[1:]:  # a later report must top everything reported before it
        assert tail[i] > max(plain_tail[:i])
    assert sum(s == 0.0 for s in tail) >= 8 - len(high)


def test_a_value_outside_the_range_seen_scores_one():
    _, tail = _calm_then(Spatial(Likelihood(Given(), probation=100)), [(0.0, 5.0), (0.0, 1.0)])
    assert tail[0] == 1.0 and tail[1] < 1.0
    _, tail = _calm_then(Likelihood(Given(), probation=100), [(0.0, 5.0)])
    assert tail[0] < 1.0


def test_score_one_is_the_next_score_and_changes_nothing():
    det = nab_scoring(Given(), probation=60)
    records = [{"raw": (i * 37 % 11) / 10, "value": (i * 13 % 7) - 3.0 * (i == 150)}
               for i in range(400)]
    for r in records:
        peek = det.score_one(r)
        assert det.score_one(r) == peek
        assert det.score_then_learn(r) == peek


def test_bad_input_is_refused_without_changing_state():
    det = Onset(Spatial(Likelihood(Given(), probation=100)))
    _calm_then(det, [], n=150)
    lik = det.detector.detector
    seen = lik.likelihood.seen
    for raw in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="score in"):
            det.score_then_learn({"raw": raw, "value": 1.0})
    for bad in ({"raw": 0.5, "value": float("nan")}, {"raw": 0.5}, "x"):
        with pytest.raises(ValueError, match="expected"):
            det.score_then_learn(bad)
    assert lik.likelihood.seen == seen
    with pytest.raises(ValueError, match="probation >= 2"):
        Likelihood(Given(), probation=1)
    with pytest.raises(ValueError, match="window >= 1"):
        Onset(Given(), window=0)
