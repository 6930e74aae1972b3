import math
import random

from streamwise.learn.anomaly.likelihood import AnomalyLikelihood
from streamwise.learn.anomaly.lmu_predictor import LMUPredictorDetector
from streamwise.learn.anomaly.postprocess import Likelihood


def test_likelihood_is_neutral_while_learning_then_flags_a_jump():
    rng = random.Random(0)
    lik = AnomalyLikelihood(learning=25, estimation=25, history=500, average=5, refit_every=10)
    early = [lik.update(0.1 + 0.01 * rng.random()) for _ in range(50)]
    assert set(early) == {lik._scale(0.5)}
    calm = [lik.update(0.1 + 0.01 * rng.random()) for _ in range(200)]
    jump = [lik.update(0.9) for _ in range(5)]
    assert max(calm) < 0.5 < max(jump)
    assert all(0.0 <= s <= 1.0 for s in calm + jump)


def test_lmu_predictor_scores_a_spike_above_the_regular_signal():
    det = Likelihood(LMUPredictorDetector(), probation=200, average=5, times_raw=True)
    scores = []
    for t in range(1500):
        v = math.sin(2 * math.pi * t / 48) + (8.0 if t == 1200 else 0.0)
        scores.append(det.score_then_learn(v))
    assert max(scores[1200:1210]) > max(scores[600:1190])


def test_peek_is_the_next_update_and_changes_nothing():
    rng = random.Random(1)
    lik = AnomalyLikelihood(learning=20, estimation=15, history=40, average=4, refit_every=7)
    for _ in range(300):
        raw = rng.random() ** 3
        before = (lik.seen, list(lik.recent), list(lik.history), lik.mean, lik.std)
        peek = lik.peek(raw)
        assert (lik.seen, list(lik.recent), list(lik.history), lik.mean, lik.std) == before
        assert lik.update(raw) == peek


def test_numenta_filter_reports_a_run_of_red_levels_once():
    rng = random.Random(2)

    def run(**kw):
        lik = AnomalyLikelihood(learning=25, estimation=25, history=500, average=1,
                                refit_every=1000, **kw)
        for _ in range(250):
            lik.update(0.05 + 0.01 * rng.random())
        return [lik.update(1.0) for _ in range(4)]

    plain, filtered = run(), run(numenta_filter=True)
    assert min(plain) > 0.99  # every extreme level scores the top
    assert filtered[0] > 0.99 and max(filtered[1:]) < 0.31  # later ones only "yellow" (0.999)
    assert abs(filtered[1] - math.log(1e-3 + 1e-10) / math.log(1e-10)) < 1e-9


def test_numenta_filter_peek_is_the_next_update():
    rng = random.Random(3)
    lik = AnomalyLikelihood(learning=20, estimation=15, history=40, average=2, refit_every=7,
                            numenta_filter=True)
    for _ in range(300):
        raw = 1.0 if rng.random() < 0.1 else 0.02 * rng.random()
        peek = lik.peek(raw)
        assert lik.update(raw) == peek
