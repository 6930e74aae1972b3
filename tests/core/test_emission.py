"""Latency-aware scoring: emission times on a real-time clock, truth read at emission."""

import numpy as np
import pytest
import torch

import streamwise as sw
from streamwise.core.emission import at_emission, emitted, f1


def test_emission_times_follow_chunk_arrival_and_lookahead():
    causal = sw.Conv1d(1, 1, 3, padding="causal").double()
    x = torch.randn(1, 1, 10, dtype=torch.float64)
    y, when = emitted(causal, x, chunk=4, sample_rate=2.0, compute_scale=0.0)
    torch.testing.assert_close(y, causal(x))
    # frames 0-3 arrive with the first chunk (at 4 samples = 2 s), 4-7 at 4 s, 8-9 at 5 s
    assert when.tolist() == [2.0] * 4 + [4.0] * 4 + [5.0] * 2
    ahead = sw.Conv1d(1, 1, 5, padding="same").double()  # 2 samples of lookahead
    y, when = emitted(ahead, x, chunk=1, sample_rate=1.0, compute_scale=0.0)
    torch.testing.assert_close(y, ahead(x))
    assert when.tolist() == [3, 4, 5, 6, 7, 8, 9, 10, 10, 10]  # the last two at the flush


def test_measured_compute_is_added_and_scaled():
    m = sw.Conv1d(1, 1, 3, padding="causal")
    x = torch.randn(1, 1, 64)
    _, free = emitted(m, x, 16, 16.0, compute_scale=0.0)
    _, slow = emitted(m, x, 16, 16.0, compute_scale=1000.0)
    assert np.all(slow > free)  # every push took some time, a thousand times over


def test_truth_is_read_at_the_frame_an_instant_falls_in():
    truth = np.array([0, 1, 2, 3])
    when = np.array([-1.0, 0.0, 0.5, 1.0, 1.0001, 2.0, 3.9, 4.0, 9.0])
    assert at_emission(truth, 1.0, when).tolist() == [0, 0, 0, 0, 1, 1, 3, 3, 3]
    with pytest.raises(ValueError, match="non-empty 1-D truth"):
        at_emission([], 1.0, when)
    with pytest.raises(ValueError, match="frame_s > 0"):
        at_emission(truth, 0.0, when)


def test_with_no_delay_streaming_scores_as_offline_and_delay_costs():
    gen = torch.Generator().manual_seed(0)
    truth = (torch.rand(400, generator=gen) > 0.5).repeat_interleave(5).numpy()  # runs of 5
    ident = sw.Conv1d(1, 1, 1, bias=False).double()
    with torch.no_grad():
        ident.weight.fill_(1.0)
    x = torch.from_numpy(truth.astype(np.float64))[None, None]
    y, when = emitted(ident, x, chunk=1, sample_rate=1.0, compute_scale=0.0)
    pred = y[0, 0].numpy() > 0.5
    assert f1(pred, truth) == 1.0 and f1(pred, at_emission(truth, 1.0, when)) == 1.0
    _, late = emitted(ident, x, chunk=8, sample_rate=1.0, compute_scale=0.0)
    assert f1(pred, at_emission(truth, 1.0, late)) < 0.9


def test_f1_and_bad_arguments():
    assert f1([1, 0, 1, 0], [1, 1, 0, 0]) == 0.5
    assert f1([0, 0], [0, 0]) == 1.0
    with pytest.raises(ValueError, match="one shape"):
        f1([1, 0], [1])
    m = sw.Conv1d(1, 1, 3, padding="causal")
    with pytest.raises(ValueError, match="chunk >= 1"):
        emitted(m, torch.zeros(1, 1, 8), 0, 16.0)
    with pytest.raises(ValueError, match=r"\[B, C, T\]"):
        emitted(m, torch.zeros(8), 4, 16.0)


def test_a_device_that_cannot_keep_up_falls_behind():
    """Pushes run one at a time: with compute slower than the chunks, the delay keeps growing."""
    m = sw.Conv1d(1, 1, 3, padding="causal")
    x = torch.randn(1, 1, 4000)
    _, when = emitted(m, x, 40, 1e6, compute_scale=1e4)  # 40 us chunks, compute x 10^4
    lag = when - (np.arange(4000) + 1) / 1e6
    per_chunk = lag[39::40]
    assert np.all(np.diff(per_chunk) > 0)  # each chunk waits longer than the one before
