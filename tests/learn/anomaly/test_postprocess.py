import pytest

from streamwise.learn.anomaly.postprocess import AnomalyScorer


def _calm_then(scorer, tail, n=300, value=1.0):
    out = [scorer.update(0.02 if i % 7 else 0.1, value + 0.01 * (i % 5)) for i in range(n)]
    return out, [scorer.update(raw, v) for raw, v in tail]


def test_only_the_onset_of_an_episode_is_reported():
    damped, plain = AnomalyScorer(probation=100, onset=20), AnomalyScorer(probation=100, onset=0)
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
    scorer = AnomalyScorer(probation=100, onset=20)
    _, tail = _calm_then(scorer, [(0.0, 5.0), (0.0, 1.0)])
    assert tail[0] == 1.0
    scorer = AnomalyScorer(probation=100, onset=20, spatial_tolerance=None)
    _, tail = _calm_then(scorer, [(0.0, 5.0)])
    assert tail[0] < 1.0


def test_bad_input_is_refused_without_changing_state():
    scorer = AnomalyScorer(probation=100)
    _calm_then(scorer, [], n=150)
    seen = scorer.likelihood.seen
    for raw, value in ((1.5, 1.0), (-0.1, 1.0), (0.5, float("nan")), (float("nan"), 1.0)):
        with pytest.raises(ValueError, match="expected raw in"):
            scorer.update(raw, value)
    assert scorer.likelihood.seen == seen
    with pytest.raises(ValueError, match="probation >= 2"):
        AnomalyScorer(probation=1)
