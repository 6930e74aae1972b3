"""The latency model (seconds = a + b n, fitted online) and SLO-aware batch sizes."""

import pytest

from streamwise.serve.latency_model import LatencyModel
from tests.serve.test_scheduler import _session, _setup, _submit_together


def _fitted(a=1.0, b=1.0, rounds=4):
    m = LatencyModel()
    for _ in range(rounds):
        for n in (1, 2, 4, 8):
            m.observe(n, a + b * n)
    return m


def test_fit_recovers_the_line_and_sizes_batches_from_it():
    m = _fitted(0.5, 0.25)
    a, b = m.coefficients()
    assert a == pytest.approx(0.5) and b == pytest.approx(0.25)
    assert m.predict(6) == pytest.approx(2.0)
    assert m.largest(64, 2.0) == 6  # 0.5 + 0.25 * 6 = 2.0
    assert m.largest(4, 2.0) == 4  # never above the group
    assert m.largest(64, 0.8) == 1  # only one stream makes it: 0.75 s
    assert m.largest(64, 0.7) == 64  # lost whatever the size: not cut, throughput kept


def test_undetermined_until_two_sizes_and_bad_samples_are_ignored():
    m = LatencyModel(min_samples=2)
    for _ in range(10):
        m.observe(4, 0.2)  # one size only: a and b cannot be told apart
    assert m.coefficients() is None and m.largest(9, 0.0) == 9
    m.observe(0, 1.0)
    m.observe(2, float("nan"))
    m.observe(2, -1.0)
    assert m.coefficients() is None
    m.observe(8, 0.4)
    assert m.coefficients() is not None
    with pytest.raises(ValueError, match="decay"):
        LatencyModel(decay=0)


@pytest.mark.parametrize("slo", [False, True])
def test_slo_batching_cuts_the_group_so_the_earliest_deadline_holds(slo):
    model, batcher, sched = _setup(max_batch=8, slo_batching=slo)
    try:
        sched.latency["m"] = _fitted(1.0, 1.0)  # a step of n chunks takes 1 + n seconds
        _submit_together(sched, [_session(model, f"s{k}") for k in range(6)], [3.5] * 6)
        sizes = [len(ids) for _, ids in batcher.steps]
        # without: one step of 6 (predicted 7 s, past every deadline); with: 2 first (3 s),
        # then the 4 others together, late whatever their size (in ones they would end later)
        assert sizes == ([2, 4] if slo else [6])
    finally:
        sched.stop()
