import json

import numpy as np
import torch

import streamwise as sw
from streamwise.core.verify import measured_delay, random_chunks


def test_random_chunks_cover_the_length_with_zeros_and_ones():
    rng = np.random.default_rng(0)
    sizes = random_chunks(500, rng)
    assert sum(sizes) == 500
    assert 0 in sizes and 1 in sizes


def test_verify_reports_pass_and_metadata():
    model = sw.Sequential(sw.Conv1d(2, 4, 5, padding="same"), sw.ReLU(),
                          sw.Conv1d(4, 2, 3, stride=2, padding=1))
    report = sw.verify(model, torch.randn(2, 2, 300), trials=5)
    assert report.passed and report.max_rel_error < 1e-6
    assert report.delay_frames == float(model.delay)
    assert report.measured_delay_frames == float(model.delay)
    assert 0 < report.state_bytes_measured <= report.state_bytes_bound
    assert set(report.latency_ms) == {"p50", "p90", "p99"}
    assert "PASS" in str(report)
    assert json.loads(report.to_json())["passed"] is True


class _Leaky(sw.Conv1d):
    """A deliberately broken streamer: forgets its buffer between chunks."""

    def step(self, x, state):
        state = dict(state)
        state["buf"] = None
        state["o_next"] = 0
        state["t_in"] = 0
        return super().step(x, state)


def test_verify_catches_a_broken_streamer():
    torch.manual_seed(0)
    report = sw.verify(_Leaky(1, 1, 5, padding="causal"), torch.randn(1, 1, 100), trials=3)
    assert not report.passed
    assert "FAIL" in str(report)


def test_measured_delay_of_causal_model_is_zero():
    model = sw.Conv1d(1, 1, 4, padding="causal")
    assert measured_delay(model, torch.randn(1, 1, 50)) == 0


def test_verify_reports_total_latency_algorithmic_plus_compute():
    import pytest

    import streamwise as sw
    from streamwise.core.verify import verify

    m = sw.Sequential(sw.Conv1d(1, 2, 5, padding="same"), sw.Conv1d(2, 1, 3, padding="same"))
    x = torch.randn(1, 1, 800)
    r = verify(m, x, trials=2, chunk=80, sample_rate=8000)
    assert r.chunk_frames == 80 and r.algorithmic_frames == float(m.delay) + 80 == 83
    for q in ("p50", "p99"):
        assert r.compute_ms[q] > 0
        assert r.total_latency_ms[q] == pytest.approx(83 / 8000 * 1e3 + r.compute_ms[q])
    assert "total latency" in str(r) and "10.375 ms" in str(r)
    plain = verify(m, x, trials=2)  # no rate: frames and compute, a tenth of x per push
    assert plain.chunk_frames == 80 and plain.total_latency_ms == {}
    assert "give sample_rate" in str(plain)
    with pytest.raises(ValueError, match="chunk must be an integer"):
        verify(m, x, trials=1, chunk=0)
    with pytest.raises(ValueError, match="sample_rate must be a positive"):
        verify(m, x, trials=1, sample_rate=float("nan"))
